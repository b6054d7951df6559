/**
 * osquery's result and status log lines, as osqueryd's filesystem logger and Fleet's filesystem
 * logger (`osquery_result_log_file`, `osquery_status_log_file`) write them, turned into one flat
 * object per row. Shared by the fleet beat and the osquery beat.
 *
 * Result formats (https://osquery.readthedocs.io/en/stable/deployment/logging/):
 * - event: `{name, action: added|removed, columns: {…}}` → one row;
 * - snapshot: `{name, action: "snapshot", snapshot: [{…}, …]}` → one row per entry (a snapshot line
 *   with `columns` instead, as Fleet writes some, is one row);
 * - batch (differential, `--logger_event_type=false`): `{name, diffResults: {added: […], removed: […]}}`
 *   → one row per entry with action added or removed (Fleet writes `"added": ""` for none).
 */
import { isJsonObject } from './json-object.js';
import { parseBoundedJson } from '../../broker/bounded-json.js';

/** A line that is not a valid osquery log object: counted and skipped. */
export class OsqueryLogError extends Error {
  override name = 'OsqueryLogError';
}

export type OsqueryResultFormat = 'event' | 'snapshot' | 'differential';

/** One result row: the query's metadata plus the row's columns. */
export interface OsqueryResultRow {
  name: string;
  action: string;
  format: OsqueryResultFormat;
  hostIdentifier?: string;
  '@timestamp'?: string;
  unixTime?: number;
  calendarTime?: string;
  epoch?: number;
  counter?: number;
  numerics?: boolean;
  decorations?: Record<string, unknown>;
  /** Columns as osquery gave them (strings unless the query ran with numerics). */
  columns: Record<string, unknown>;
  /** Other top-level keys (e.g. Fleet's `query_id`) are kept. */
  [extra: string]: unknown;
}

export interface OsqueryStatus {
  hostIdentifier?: string;
  '@timestamp'?: string;
  unixTime?: number;
  calendarTime?: string;
  /** 0 info, 1 warning, 2 error, 3 fatal (glog). */
  severity?: number;
  filename?: string;
  line?: number;
  message?: string;
  version?: string;
  decorations?: Record<string, unknown>;
  [extra: string]: unknown;
}

/** Parses one JSON log line into an object, or throws OsqueryLogError. */
export function parseJsonObject(line: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = parseBoundedJson(line);
  } catch (err) {
    throw new OsqueryLogError(`invalid JSON (${(err as Error).message})`);
  }
  if (!isJsonObject(v)) throw new OsqueryLogError('log line is not a JSON object');
  return v;
}

const CONTENT_KEYS = new Set([
  'columns',
  'snapshot',
  'diffResults',
  'action',
  'name',
  'hostIdentifier',
  'unixTime',
  'calendarTime',
  'epoch',
  'counter',
  'numerics',
  'decorations',
]);

/** The rows of one result log object (see the module comment for the formats). */
export function osqueryResultRows(obj: Record<string, unknown>): OsqueryResultRow[] {
  if (typeof obj.name !== 'string' || obj.name === '') throw new OsqueryLogError('result without a query name');
  const meta = {
    name: obj.name,
    hostIdentifier: hostOf(obj),
    ...timeOf(obj),
    epoch: optionalNumber(obj, 'epoch'),
    counter: optionalNumber(obj, 'counter'),
    numerics: typeof obj.numerics === 'boolean' ? obj.numerics : undefined,
    decorations: isJsonObject(obj.decorations) ? obj.decorations : undefined,
  };
  // no prototype: a top-level key named `__proto__` is then kept as data, not taken as the object's prototype
  const extras: Record<string, unknown> = Object.create(null);
  for (const [k, v] of Object.entries(obj)) if (!CONTENT_KEYS.has(k) && !k.startsWith('@')) extras[k] = v;
  const row = (action: string, format: OsqueryResultFormat, columns: unknown): OsqueryResultRow => {
    if (!isJsonObject(columns)) throw new OsqueryLogError(`a ${format} row of ${obj.name} is not an object`);
    return dropUndefined({ ...meta, action, format, ...extras, columns }) as OsqueryResultRow;
  };

  if (obj.diffResults !== undefined) {
    if (!isJsonObject(obj.diffResults)) throw new OsqueryLogError('diffResults is not an object');
    return [
      ...rowList(obj.diffResults.added, 'added').map((c) => row('added', 'differential', c)),
      ...rowList(obj.diffResults.removed, 'removed').map((c) => row('removed', 'differential', c)),
    ];
  }
  if (Array.isArray(obj.snapshot)) return obj.snapshot.map((c) => row('snapshot', 'snapshot', c));
  if (obj.columns !== undefined) {
    const action = typeof obj.action === 'string' ? obj.action : 'added';
    return [row(action, action === 'snapshot' ? 'snapshot' : 'event', obj.columns)];
  }
  throw new OsqueryLogError(`result of ${obj.name} has none of columns, snapshot, diffResults`);
}

/** A status log object (JSON), with numbers where osquery writes numeric strings. */
export function osqueryStatus(obj: Record<string, unknown>): OsqueryStatus {
  const out: OsqueryStatus = { ...obj, hostIdentifier: hostOf(obj), ...timeOf(obj) };
  for (const k of ['severity', 'line'] as const) out[k] = optionalNumber(obj, k);
  return dropUndefined(out) as OsqueryStatus;
}

const GLOG = /^([IWEF])(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)(\.\d+)? +(\d+) ([^:\]]+):(\d+)\] ?(.*)$/;
const GLOG_SEVERITY = { I: 0, W: 1, E: 2, F: 3 } as const;

/**
 * A status line in glog's text format (osqueryd's own `osqueryd.INFO` etc.):
 * `I0412 08:03:59.664191 3056837568 init.cpp:380] osquery initialized`. Glog leaves out the
 * year: the most recent year that does not put the line in the future is taken (`now` for tests).
 */
export function glogStatus(line: string, now = new Date()): OsqueryStatus {
  const m = GLOG.exec(line);
  if (!m) throw new OsqueryLogError('not a glog line');
  const [, sev, mon, day, hh, mi, ss, frac, thread, filename, lineNo, message] = m;
  let year = now.getUTCFullYear();
  const at = (y: number) =>
    Date.UTC(y, Number(mon) - 1, Number(day), Number(hh), Number(mi), Number(ss)) + Math.floor(Number(`0${frac ?? ''}`) * 1000);
  if (at(year) > now.getTime() + 86_400_000) year -= 1;
  const ms = at(year);
  if (Number.isNaN(ms)) throw new OsqueryLogError('glog line with an impossible date');
  return {
    '@timestamp': new Date(ms).toISOString(),
    unixTime: Math.floor(ms / 1000),
    severity: GLOG_SEVERITY[sev as keyof typeof GLOG_SEVERITY],
    filename,
    line: Number(lineNo),
    thread: Number(thread),
    message,
  };
}

/** osquery's host: `hostIdentifier`, else the names older loggers and Fleet decorations use. */
function hostOf(obj: Record<string, unknown>): string | undefined {
  const d = isJsonObject(obj.decorations) ? obj.decorations : {};
  for (const v of [obj.hostIdentifier, obj.host_identifier, obj.hostname, obj.host, d.hostname, d.host_uuid]) {
    if (typeof v === 'string' && v !== '') return v;
  }
  return undefined;
}

/** `unixTime` (number or numeric string), `calendarTime`, and `@timestamp` from either. */
function timeOf(obj: Record<string, unknown>): { unixTime?: number; calendarTime?: string; '@timestamp'?: string } {
  const unixTime = optionalNumber(obj, 'unixTime');
  const calendarTime = typeof obj.calendarTime === 'string' ? obj.calendarTime : undefined;
  let ms = unixTime !== undefined ? unixTime * 1000 : undefined;
  if (ms === undefined && calendarTime) {
    // osquery writes UTC; older versions leave out the zone
    const parsed = Date.parse(/(UTC|GMT|[+-]\d{4})$/.test(calendarTime) ? calendarTime : `${calendarTime} UTC`);
    if (!Number.isNaN(parsed)) ms = parsed;
  }
  const d = ms !== undefined ? new Date(ms) : undefined;
  return { unixTime, calendarTime, '@timestamp': d && !Number.isNaN(d.getTime()) ? d.toISOString() : undefined };
}

function optionalNumber(obj: Record<string, unknown>, key: string): number | undefined {
  const v = obj[key];
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  if (v === undefined || v === null || v === '') return undefined;
  throw new OsqueryLogError(`${key} is not a number`);
}

function rowList(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null || v === '') return [];
  if (!Array.isArray(v)) throw new OsqueryLogError(`diffResults.${what} is not a list`);
  return v;
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}
