import { strftime } from './strftime.js';
import type { LogSettings } from '../config/types.js';

/**
 * Mosquitto's log types (log_type keys). A call site tags a line with one by setting the
 * `log_type` field (`log.info({ log_type: 'notice' }, 'Client x disconnected.')`); an untagged
 * line takes its type from its pino level.
 */
export type MosqLogType = 'error' | 'warning' | 'notice' | 'information' | 'debug' | 'subscribe' | 'unsubscribe' | 'websockets';

export const ALL_LOG_TYPES: readonly MosqLogType[] = [
  'error',
  'warning',
  'notice',
  'information',
  'debug',
  'subscribe',
  'unsubscribe',
  'websockets',
];
/** Mosquitto's default when no log_type line is given. */
const DEFAULT_TYPES: readonly MosqLogType[] = ['error', 'warning', 'notice', 'information'];

/** One pino record as it reaches the destination stream. */
export interface LogRecord {
  level: number;
  time: number;
  msg?: string;
  name?: string;
  log_type?: MosqLogType;
  [k: string]: unknown;
}

/** The types to print, from the configured log_type lines (`all`, `none`, or a list) and -v (= all, as Mosquitto's -v). */
export function enabledTypes(configured: Set<string>, verbose: boolean): Set<MosqLogType> {
  if (verbose || configured.has('all')) return new Set(ALL_LOG_TYPES);
  if (configured.size === 0) return new Set(DEFAULT_TYPES);
  return new Set(ALL_LOG_TYPES.filter((t) => configured.has(t)));
}

export function typeOf(rec: LogRecord): MosqLogType {
  if (rec.log_type && ALL_LOG_TYPES.includes(rec.log_type)) return rec.log_type;
  if (rec.level >= 50) return 'error';
  if (rec.level >= 40) return 'warning';
  if (rec.level >= 30) return 'information';
  return 'debug';
}

/** `$SYS/broker/log/<letter>` as Mosquitto's logging.c names them. */
const TOPICS: Record<MosqLogType, string> = {
  error: 'E',
  warning: 'W',
  notice: 'N',
  information: 'I',
  debug: 'D',
  subscribe: 'M/subscribe',
  unsubscribe: 'M/unsubscribe',
  websockets: 'WS',
};
export const topicFor = (t: MosqLogType) => `$SYS/broker/log/${TOPICS[t]}`;

/** syslog(3) severities Mosquitto uses per type. */
const SEVERITY: Record<MosqLogType, number> = {
  error: 3,
  warning: 4,
  notice: 5,
  information: 6,
  debug: 7,
  subscribe: 5,
  unsubscribe: 5,
  websockets: 7,
};
export const syslogSeverity = (t: MosqLogType) => SEVERITY[t];

/** Fields pino or the call site put on every record that are not part of what the line says. */
const ENVELOPE = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'log_type', 'v']);

function show(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && 'message' in v) return String((v as { message: unknown }).message);
  return JSON.stringify(v);
}

/**
 * The text of a line without timestamp: Mosquitto's own lines as they are; mqprobe's module lines
 * prefixed with the module (`capture.logstash: …`) and followed by their fields (already redacted by pino).
 */
export function lineText(rec: LogRecord): string {
  let text = rec.msg ?? '';
  // a line tagged with its Mosquitto type is complete as Mosquitto words it; its fields are for JSON readers
  if (!rec.log_type) {
    if (rec.name && rec.name !== 'mqprobe') text = `${rec.name}: ${text}`;
    const extras = Object.keys(rec).filter((k) => !ENVELOPE.has(k));
    if (extras.length) text += ` (${extras.map((k) => `${k}: ${show(rec[k])}`).join(', ')})`;
  }
  // one record is one line: a newline inside would forge a second line for log readers
  return text.replace(/[\r\n]+/g, ' ');
}

/** `1733355000: ` (Mosquitto's default), the log_timestamp_format form, or nothing with `log_timestamp false`. */
export function timestampPrefix(opts: Pick<LogSettings, 'timestamp' | 'timestampFormat'>, timeMs: number): string {
  if (!opts.timestamp) return '';
  return `${opts.timestampFormat ? strftime(opts.timestampFormat, new Date(timeMs)) : Math.floor(timeMs / 1000)}: `;
}
