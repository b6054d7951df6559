import { isAbsolute, resolve, dirname } from 'node:path';
import { ConfigError } from './errors.js';
import type { ConfigLine } from './lexer.js';

/** How a Mosquitto key behaves in mqprobe: as in Mosquitto, differently (how), or not at all (why). */
export type MosquittoParity = 'same' | { differs: string } | { unsupported: string };

/** Where a key may stand. `security` keys follow `per_listener_settings`. */
export type KeyScope = 'global' | 'listener' | 'security' | 'beat';

/**
 * One config key: the single source for parsing, validation, defaults and the generated
 * docs/configuration.md. `T` is the object the key writes into.
 */
export interface KeySpec<T> {
  key: string;
  /** Argument synopsis as shown in the docs, e.g. `<port> [bind address]`. */
  usage: string;
  /** One or two sentences for the docs. */
  doc: string;
  /** The default as the docs state it (omit for "none"). */
  default?: string;
  scope: KeyScope;
  /** Repeatable keys add a value each time; others replace. Docs only: set() decides. */
  repeatable?: boolean;
  /** For a Mosquitto key: how mqprobe's handling compares with Mosquitto 2.0/2.1's (the docs' Mosquitto column). */
  mosquitto?: MosquittoParity;
  /** Whether the value is a secret's path or similar; never matters for logging, the value is a path. */
  set(target: T, value: ValueReader): void;
}

/** Typed access to one config line's arguments, with errors that name file, line and key. */
export class ValueReader {
  constructor(readonly line: ConfigLine) {}

  get key(): string {
    return this.line.key;
  }

  fail(detail: string): never {
    throw new ConfigError(this.line, this.line.key, detail);
  }

  /** The number of words given must lie in [min, max]. */
  count(min: number, max = min): this {
    const n = this.line.args.length;
    if (n < min || n > max) {
      const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
      this.fail(`expected ${want} value${max === 1 ? '' : 's'}, got ${n}`);
    }
    return this;
  }

  /** Word i as a string (required unless `optional`). */
  word(i = 0): string {
    const v = this.line.args[i];
    if (v === undefined) this.fail(`missing value ${i + 1}`);
    return v;
  }

  optionalWord(i: number): string | undefined {
    return this.line.args[i];
  }

  /** Everything after the key, spaces included. */
  rest(): string {
    if (this.line.rest === '') this.fail('missing value');
    return this.line.rest;
  }

  int(i = 0, min = -Infinity, max = Infinity): number {
    const s = this.word(i);
    if (!/^-?\d+$/.test(s)) this.fail(`expected an integer, got "${s}"`);
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < min || n > max) this.fail(`expected an integer in ${min}..${max}, got ${s}`);
    return n;
  }

  number(i = 0, min = -Infinity, max = Infinity): number {
    const s = this.word(i);
    const n = Number(s);
    if (s.trim() === '' || !Number.isFinite(n) || n < min || n > max) this.fail(`expected a number in ${min}..${max}, got "${s}"`);
    return n;
  }

  port(i = 0): number {
    return this.int(i, 0, 65535);
  }

  bool(i = 0): boolean {
    const s = this.word(i);
    if (s === 'true') return true;
    if (s === 'false') return false;
    return this.fail(`expected true or false, got "${s}"`);
  }

  /** on/off switch (mqprobe keys use these as well as true/false). */
  onOff(i = 0): boolean {
    const s = this.word(i);
    if (s === 'on' || s === 'true') return true;
    if (s === 'off' || s === 'false') return false;
    return this.fail(`expected on or off, got "${s}"`);
  }

  oneOf<const C extends string>(choices: readonly C[], i = 0): C {
    const s = this.word(i);
    if (!(choices as readonly string[]).includes(s)) this.fail(`expected one of ${choices.join('|')}, got "${s}"`);
    return s as C;
  }

  /** A path, relative ones taken from the directory of the file that names them. */
  path(i = 0): string {
    const s = this.word(i);
    return isAbsolute(s) ? s : resolve(dirname(this.line.file), s);
  }

  /**
   * Byte sizes with optional k/M/G suffix (binary). `range` bounds the value, each bound written as
   * a user would write it (`{ min: '1k', max: '256M' }`), which is also how the error names it.
   */
  bytes(i = 0, range?: Range): number {
    const n = parseBytes(this.word(i));
    if (n === undefined) this.fail(`expected a byte size such as 1048576 or 64M, got "${this.word(i)}"`);
    this.within(n, range, parseBytes, 'a size');
    return n;
  }

  /** Durations: plain seconds, or a number with ms/s/m/h/d suffix. Returns milliseconds; `range` as for bytes(). */
  durationMs(i = 0, range?: Range): number {
    const n = parseDurationMs(this.word(i));
    if (n === undefined) this.fail(`expected a duration such as 30, 30s, 5m, 1h, got "${this.word(i)}"`);
    this.within(n, range, parseDurationMs, 'a duration');
    return n;
  }

  private within(n: number, range: Range | undefined, parse: (s: string) => number | undefined, what: string): void {
    if (!range) return;
    const bound = (b: string) => parse(b) ?? Number.NaN;
    if (n >= bound(range.min) && (range.max === undefined || n <= bound(range.max))) return;
    this.fail(range.max === undefined ? `expected at least ${range.min}` : `expected ${what} between ${range.min} and ${range.max}`);
  }
}

/** Bounds of bytes() and durationMs(), in the syntax of the value. */
export interface Range {
  min: string;
  max?: string;
}

function parseBytes(s: string): number | undefined {
  const m = /^(\d+)([kKmMgG]?)[bB]?$/.exec(s);
  if (!m) return undefined;
  return Number(m[1]) * { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
}

function parseDurationMs(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(s);
  if (!m) return undefined;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
}

/** Looks a key up in a list of specs. */
export function specIndex<T>(specs: readonly KeySpec<T>[]): Map<string, KeySpec<T>> {
  return new Map(specs.map((s) => [s.key, s]));
}
