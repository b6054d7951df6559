import pino, { type Logger, type Level } from 'pino';
import type { BrokerConfig } from './config/types.js';
import { LogDestinations } from './log/destinations.js';
import type { MosqLogType } from './log/mosquitto-format.js';
import { targetAccount } from './privileges.js';

/**
 * Paths redacted by the logger itself, so no call site can leak a secret (DESIGN: "secrets are
 * redacted by path in the logger itself").
 */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'passwd',
  '*.passwd',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'apiKey',
  '*.apiKey',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  '*.headers.authorization',
  'enroll_secret',
  '*.enroll_secret',
  'node_key',
  '*.node_key',
  'key',
  '*.key',
  'privateKey',
  '*.privateKey',
];

const NAME_BINDING = /,"name":"(?:[^"\\]|\\.)*"/g;

/**
 * Pino appends a child's bindings to its parent's, so a logger named by module
 * (`log.child({ name: 'capture.detect' })`) would write `"name"` twice, its parent's first.
 * As the `onChild` hook of the root logger (children inherit it), this keeps only the last name.
 */
export function keepLastName(child: Logger): void {
  const c = child as unknown as Record<symbol, string>;
  const bindings = c[pino.symbols.chindingsSym];
  let names = bindings.match(NAME_BINDING)?.length ?? 0;
  if (names > 1) c[pino.symbols.chindingsSym] = bindings.replace(NAME_BINDING, (m) => (--names === 0 ? m : ''));
}

/** Mosquitto log_type → the lowest pino level that must be shown. */
function levelFor(types: Set<string>, verbose: boolean): Level {
  if (verbose || types.has('debug') || types.has('all')) return 'debug';
  if (
    types.size === 0 ||
    types.has('information') ||
    types.has('notice') ||
    types.has('subscribe') ||
    types.has('unsubscribe') ||
    types.has('websockets')
  )
    return 'info';
  if (types.has('warning')) return 'warn';
  if (types.has('none')) return 'fatal';
  return 'error';
}

/** The root logger, writing where `log_dest` says (stderr by default, like Mosquitto), in `log_format`. */
export function createLogger(config: Pick<BrokerConfig, 'logDest' | 'logType' | 'log' | 'user'>, verbose = false): Logger {
  const level = levelFor(config.logType, verbose);
  // every destination, the Mosquitto line format and log_type filtering live in log/destinations.ts
  const dests = new LogDestinations(
    config.logDest,
    config.logType,
    config.log,
    verbose,
    config.logDest.some((d) => d.kind === 'syslog') ? targetAccount(config, () => undefined) : undefined,
  );
  const log = pino(
    { name: 'mqprobe', level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { pid: process.pid }, onChild: keepLastName },
    dests,
  );
  destinationsOf.set(log, dests);
  return log;
}

/** Writes one of Mosquitto's own lines, tagged with its Mosquitto type. */
export type MosquittoLineWriter = (type: MosqLogType, text: string) => void;

/** The pino method and level number of a Mosquitto type's line (client-lines.ts logs with these). */
const PINO_LEVEL: Record<MosqLogType, Level> = {
  error: 'error',
  warning: 'warn',
  notice: 'info',
  information: 'info',
  debug: 'debug',
  subscribe: 'info',
  unsubscribe: 'info',
  websockets: 'info',
};

/**
 * Mosquitto's client lines (broker/engine/client-lines.ts) written straight to the root logger's
 * destinations: the record `log[level]({ log_type: type }, text)` would make, without pino
 * serialising it to JSON, running its redact paths over it (the text is Mosquitto's fixed words
 * around a client id, address and username, which redaction by path never touches) and the
 * destinations parsing the JSON back. At two lines per client that was about 8 % of a connection
 * storm's CPU. For log_format json the text is pino's line, field for field and in pino's order
 * (`test/broker/logger.test.ts` compares them). A logger not made by createLogger is used as it is.
 */
export function mosquittoLineWriter(log: Logger): MosquittoLineWriter {
  const dests = destinationsOf.get(log);
  if (!dests) return (type, text) => log[PINO_LEVEL[type]]({ log_type: type }, text);
  const bindings = `,"pid":${process.pid},"name":"mqprobe","log_type":"`;
  return (type, text) => {
    const level = PINO_LEVEL[type];
    if (!log.isLevelEnabled(level)) return;
    const rec = { level: log.levels.values[level], time: Date.now(), msg: text, log_type: type };
    dests.writeRecord(rec, () => `{"level":${rec.level},"time":${rec.time}${bindings}${type}","msg":${JSON.stringify(text)}}`);
  };
}

const destinationsOf = new WeakMap<Logger, LogDestinations>();

/** The destinations behind a logger made by createLogger (for `log_dest topic` and log_type checks). */
export function logDestinations(log: Logger): LogDestinations | undefined {
  return destinationsOf.get(log);
}
