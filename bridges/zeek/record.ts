import { ZeekLineError } from './tsv.js';
import { parseBoundedJson } from '../../broker/bounded-json.js';

/**
 * Zeek's JSON output (`LogAscii::use_json=T`: epoch `ts`; the json-streaming package: ISO `ts` and
 * `_path`) → the same typed shape as TSV records: `ts` in epoch seconds, plus `@timestamp`.
 */
export function parseJsonRecord(line: string): Record<string, unknown> {
  let obj: unknown;
  try {
    obj = parseBoundedJson(line);
  } catch (err) {
    throw new ZeekLineError(`invalid JSON (${(err as Error).message})`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new ZeekLineError('JSON line is not an object');
  const rec = obj as Record<string, unknown>;
  if (typeof rec.ts === 'string') {
    const epoch = isoToEpochSeconds(rec.ts);
    if (epoch === undefined) throw new ZeekLineError(`ts "${rec.ts.slice(0, 40)}" is not a time`);
    rec.ts = epoch;
  }
  return rec;
}

/** Adds `@timestamp` (ISO-8601, microseconds, UTC) from an epoch-seconds `ts`; returns the time in ms. */
export function stampRecord(rec: Record<string, unknown>): number | undefined {
  const ts = rec.ts;
  if (typeof ts !== 'number' || !Number.isFinite(ts)) return undefined;
  const iso = epochSecondsToIso(ts);
  if (iso === undefined) return undefined;
  rec['@timestamp'] = iso;
  return ts * 1000;
}

/** The last second formatted (records of a log come in time order, many within one second). */
let lastSecond = NaN;
let lastPrefix = '';

/** Epoch seconds with a fraction → `2012-02-21T16:52:55.736107Z`. */
export function epochSecondsToIso(ts: number): string | undefined {
  let sec = Math.floor(ts);
  let micro = Math.round((ts - sec) * 1e6);
  if (micro >= 1e6) {
    sec += 1;
    micro -= 1e6;
  }
  if (sec !== lastSecond) {
    const d = new Date(sec * 1000);
    if (Number.isNaN(d.getTime())) return undefined;
    // without the milliseconds and the Z (also for the 6-digit years beyond 9999)
    lastPrefix = d.toISOString().slice(0, -5);
    lastSecond = sec;
  }
  return `${lastPrefix}.${String(1e6 + micro).slice(1)}Z`;
}

/** ISO-8601 with any number of fraction digits → epoch seconds, keeping microseconds that Date.parse would drop. */
export function isoToEpochSeconds(s: string): number | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)$/.exec(s);
  if (!m) return undefined;
  const base = Date.parse(m[1] + m[3]);
  if (Number.isNaN(base)) return undefined;
  return base / 1000 + (m[2] ? Number(`0${m[2]}`) : 0);
}
