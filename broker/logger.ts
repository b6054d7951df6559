import pino, { type Logger, type Level } from 'pino';
import type { BrokerConfig } from './config/types.js';
import { LogDestinations } from './log/destinations.js';
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
  const log = pino({ ...rootOptions(level), redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, dests);
  destinationsOf.set(log, dests);
  return log;
}

const rootOptions = (level: string) => ({ name: 'mqprobe', level, base: { pid: process.pid }, onChild: keepLastName });

/**
 * A logger writing the same lines where the root logger `log` writes, at its level, without path
 * redaction: for Mosquitto's client lines (broker/engine/client-lines.ts), whose only field is
 * `log_type` and whose text is Mosquitto's fixed words around a client id, address and username,
 * which redaction by path never touches. Pino runs every redact path over every field and the
 * message, strings included; at two lines per client that was 4 % of a connection storm's CPU.
 * Any other logger is returned as it is.
 */
export function unredactedLogger(log: Logger): Logger {
  const dests = destinationsOf.get(log);
  return dests ? pino(rootOptions(log.level), dests) : log;
}

const destinationsOf = new WeakMap<Logger, LogDestinations>();

/** The destinations behind a logger made by createLogger (for `log_dest topic` and log_type checks). */
export function logDestinations(log: Logger): LogDestinations | undefined {
  return destinationsOf.get(log);
}
