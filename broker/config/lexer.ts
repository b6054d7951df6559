import { readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ConfigError, type SourcePos } from './errors.js';

/** One non-comment line of a Mosquitto-style config file. */
export interface ConfigLine extends SourcePos {
  key: string;
  /** Whitespace-separated words after the key. */
  args: string[];
  /** Everything after the key, trimmed (for values that may contain spaces). */
  rest: string;
}

/** Lines longer than this are refused rather than read into memory as one value. */
const MAX_LINE_BYTES = 64 * 1024;
/** Nesting bound for include_dir, which also catches loops that realpath cannot see. */
const MAX_INCLUDE_DEPTH = 16;

/**
 * Reads a config file into lines, following `include_dir` as Mosquitto does:
 * every `*.conf` file in the directory, in ASCII order, at the point of the include.
 */
export function readConfigLines(path: string): ConfigLine[] {
  const out: ConfigLine[] = [];
  readInto(resolve(path), out, [], undefined);
  return out;
}

function readInto(path: string, out: ConfigLine[], stack: string[], from: ConfigLine | undefined): void {
  let real: string;
  let text: string;
  try {
    real = realpathSync(path);
    text = readFileSync(real, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(from, from?.key, `cannot read config file ${path} (${reason})`);
  }
  if (stack.includes(real) || stack.length >= MAX_INCLUDE_DEPTH) {
    throw new ConfigError(from, from?.key, `include loop: ${[...stack, real].join(' -> ')}`);
  }
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    const pos = { file: path, line: i + 1 };
    if (Buffer.byteLength(raw) > MAX_LINE_BYTES) {
      throw new ConfigError(pos, undefined, `line longer than ${MAX_LINE_BYTES} bytes`);
    }
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    if (trimmed.includes('\u0000')) throw new ConfigError(pos, undefined, 'NUL byte in config line');
    const m = /^(\S+)\s*(.*)$/.exec(trimmed)!;
    const line: ConfigLine = { ...pos, key: m[1], rest: m[2], args: m[2] === '' ? [] : m[2].split(/\s+/) };
    if (line.key === 'include_dir') {
      if (line.args.length !== 1) throw new ConfigError(pos, line.key, 'expected one directory');
      const dir = isAbsolute(line.args[0]) ? line.args[0] : join(dirname(path), line.args[0]);
      for (const file of listConfFiles(dir, line)) readInto(file, out, [...stack, real], line);
      continue;
    }
    out.push(line);
  }
}

function listConfFiles(dir: string, from: ConfigLine): string[] {
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    return readdirSync(dir)
      .filter((f) => f.endsWith('.conf'))
      .sort()
      .map((f) => join(dir, f));
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(from, from.key, `cannot read include_dir ${dir} (${reason})`);
  }
}
