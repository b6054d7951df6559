/**
 * `mqprobe detect --replay mosquitto.log [mosquitto.log.1.gz …]`: Mosquitto's own logs through the
 * detectors. Each file is read (gzip by its magic bytes), its lines turned into capture events
 * (detect/mosquitto-log.ts); the events of all files are merged in time order and replayed.
 */
import { createReadStream, statSync } from 'node:fs';
import { createGunzip } from 'node:zlib';
import type { Readable, Writable } from 'node:stream';
import type { DetectConfig } from './config.js';
import { DetectionEngine } from './engine.js';
import type { IndicatorList } from './indicators.js';
import { blindSpots, MAX_LINE, MosquittoLogReader, type LogCoverage, type LogEvent } from './mosquitto-log.js';

export interface LogReplayOptions {
  config: DetectConfig;
  indicators?: IndicatorList;
  /** Mosquitto's `log_timestamp_format`, when the log was written with one. */
  timestampFormat?: string;
  /** For tests: what "now" is when judging timestamps from the future. */
  now?: number;
}

export interface LogReplayStats {
  lines: number;
  events: number;
  alerts: number;
  /** One sentence per thing the logs could not show, and per skipped line kind (with line numbers). */
  notes: string[];
}

/** A file that cannot be replayed (binary, unreadable): the replay stops naming it. */
export class LogFileError extends Error {}

const GZIP = [0x1f, 0x8b];
/** C0 controls other than tab and carriage return: Mosquitto never writes them; a line with one is damaged or forged. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f]/;

/** The lines of a file (gunzipped when it is gzip), each cut at MAX_LINE; a binary file is refused. */
async function* linesOf(path: string, overlong: number[]): AsyncGenerator<string> {
  const head = await new Promise<Buffer>((resolve, reject) => {
    const s = createReadStream(path, { start: 0, end: 1 });
    const parts: Buffer[] = [];
    s.on('data', (d) => parts.push(d as Buffer))
      .on('end', () => resolve(Buffer.concat(parts)))
      .on('error', reject);
  });
  const raw = createReadStream(path);
  const input: Readable = head[0] === GZIP[0] && head[1] === GZIP[1] ? raw.pipe(createGunzip()) : raw;
  raw.on('error', (err) => input.destroy(err));
  let partial: Buffer[] = [];
  let partialLen = 0;
  let dropping = false;
  let lineNo = 0;
  let checked = false;
  for await (const chunk of input as AsyncIterable<Buffer>) {
    if (!checked) {
      checked = true;
      const nul = chunk.subarray(0, 8192).indexOf(0);
      if (nul >= 0) throw new LogFileError(`${path}: not a text log (binary content at byte ${nul})`);
    }
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf(10, from);
      const end = nl < 0 ? chunk.length : nl;
      if (!dropping) {
        const room = MAX_LINE - partialLen;
        const piece = chunk.subarray(from, Math.min(end, from + room));
        partial.push(piece);
        partialLen += piece.length;
        if (end - from > room) dropping = true;
      }
      if (nl < 0) break;
      lineNo++;
      if (dropping) overlong.push(lineNo);
      yield dropping ? '' : Buffer.concat(partial, partialLen).toString('utf8').replace(/\r$/, '');
      partial = [];
      partialLen = 0;
      dropping = false;
      from = nl + 1;
    }
  }
  if (partialLen > 0 || dropping) {
    lineNo++;
    if (dropping) overlong.push(lineNo);
    yield dropping ? '' : Buffer.concat(partial, partialLen).toString('utf8');
  }
}

const list = (ns: number[]) => `${ns.slice(0, 5).join(', ')}${ns.length > 5 ? ', …' : ''}`;

/** The events of one log file, and what was skipped in it. */
async function readLog(
  path: string,
  opts: LogReplayOptions,
  notes: string[],
): Promise<{ events: LogEvent[]; coverage: LogCoverage; lines: number }> {
  let mtime: number;
  try {
    mtime = statSync(path).mtimeMs;
  } catch (err) {
    throw new LogFileError(`${path}: ${(err as Error).message}`);
  }
  const reader = new MosquittoLogReader(path, { timestampFormat: opts.timestampFormat, now: opts.now, fallbackTime: mtime });
  const events: LogEvent[] = [];
  const overlong: number[] = [];
  const control: number[] = [];
  let lines = 0;
  for await (const line of linesOf(path, overlong)) {
    lines++;
    if (line === '') continue;
    if (CONTROL.test(line)) {
      control.push(lines);
      continue;
    }
    for (const e of reader.read(line, lines)) events.push(e);
  }
  if (overlong.length) notes.push(`${path}: skipped ${overlong.length} line(s) longer than ${MAX_LINE} bytes (lines ${list(overlong)})`);
  if (control.length) notes.push(`${path}: skipped ${control.length} line(s) with control characters (lines ${list(control)})`);
  if (reader.future.length)
    notes.push(`${path}: skipped ${reader.future.length} line(s) dated more than a day in the future (lines ${list(reader.future)})`);
  if (lines > 0 && !reader.coverage.timestamps && opts.timestampFormat)
    notes.push(`${path}: no line starts with a timestamp in the format "${opts.timestampFormat}"`);
  return { events, coverage: reader.coverage, lines };
}

/** Rules that judge single events: all a log without timestamps can support. */
const TIMELESS = new Set(['wildcard-subscription', 'payload-size', 'threat-intel']);

function timelessConfig(config: DetectConfig, ruleNames: readonly string[]): DetectConfig {
  const rules = new Map(config.rules);
  const pos = { file: '(log without timestamps)', line: 0 };
  for (const name of ruleNames)
    if (!TIMELESS.has(name)) rules.set(name, { enabled: false, params: rules.get(name)?.params ?? new Map(), pos });
  return { ...config, rules };
}

/** Replays Mosquitto logs; the alerts go to `output` as JSON lines. Throws LogFileError for a file that cannot be read. */
export async function replayMosquittoLogs(files: string[], output: Writable, opts: LogReplayOptions): Promise<LogReplayStats> {
  const notes: string[] = [];
  const all: LogEvent[] = [];
  const total: LogCoverage = { timestamps: false, connects: 0, refusals: 0, subscribes: 0, publishes: 0, disconnects: 0 };
  let lines = 0;
  for (const f of files) {
    const r = await readLog(f, opts, notes);
    lines += r.lines;
    for (const e of r.events) all.push(e);
    for (const k of Object.keys(total) as (keyof LogCoverage)[])
      if (k === 'timestamps') total.timestamps ||= r.coverage.timestamps;
      else total[k] += r.coverage[k];
  }
  // several files (rotated logs, several brokers) in time order; a stable sort keeps each file's order within a second
  const time = (e: LogEvent) => Date.parse(e['@timestamp']);
  all.sort((a, b) => time(a) - time(b));
  const probe = new DetectionEngine({ config: opts.config });
  const config = total.timestamps
    ? opts.config
    : timelessConfig(
        opts.config,
        probe.rules.map((r) => r.spec.name),
      );
  const engine = new DetectionEngine({ config, indicators: () => opts.indicators });
  let alerts = 0;
  const write = async (out: readonly unknown[]) => {
    for (const a of out) {
      alerts++;
      if (!output.write(`${JSON.stringify(a)}\n`)) await new Promise((r) => output.once('drain', r));
    }
  };
  let seq = 0;
  for (const e of all) {
    (e.event as Record<string, unknown>).sequence = ++seq;
    await write(engine.process(e));
  }
  await write(engine.flush());
  return { lines, events: all.length, alerts, notes: [...notes, ...blindSpots(total)] };
}

/** Whether a file holds capture events (json_lines) rather than Mosquitto's log: its first non-empty line is a JSON object. */
export async function isCaptureFile(path: string): Promise<boolean> {
  for await (const line of linesOf(path, [])) if (line.trim() !== '') return line.trimStart().startsWith('{');
  return false;
}
