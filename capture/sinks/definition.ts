import type { Logger } from 'pino';
import type { ValueReader } from '../../broker/config/spec.js';
import type { BrokerApi } from '../../broker/engine/api.js';
import type { CaptureConfig, SinkConfig } from '../config.js';
import type { SinkIO } from '../runner.js';

/** What a sink's factory may use besides its own `capture_sink` line. */
export interface SinkEnv {
  /** The broker, for the mqtt sink (which runs on the broker's thread only). */
  broker?: BrokerApi;
  config: CaptureConfig;
  log: Logger;
  stdout?: NodeJS.WritableStream;
  resendBytes?: number;
}

/**
 * One kind of capture sink, as the registry (capture/sinks/index.ts) lists it: how its `capture_sink` line
 * reads, what the sink is called, and how it is made. Adding a sink is one file exporting this, plus one
 * registry line.
 */
export interface SinkDefinition {
  /** The words after `capture_sink` that select this sink. */
  kinds: readonly string[];
  /** Synopsis for the docs, e.g. `file <path>`. */
  usage: string;
  /** Reads the rest of the line (`kind` is word 0); errors name file, line and key. */
  parse(v: ValueReader, kind: string): SinkConfig;
  /** Its name in metrics, logs and the spool folder (before `#2` for a repeated sink). */
  name(c: SinkConfig): string;
  /** Sinks that publish into the broker or write the process's own stdout stay on the broker's thread. */
  brokerThread?: boolean;
  /** A topic the sink publishes its events on, which capture must not record (no event captures its own delivery). */
  ownTopic?(c: SinkConfig): string;
  create(c: SinkConfig, env: SinkEnv): { io: SinkIO; spools: boolean };
}

/** A URL argument of one of the schemes allowed, or a config error. */
export function urlArg(v: ValueReader, i: number, allowed: string[]): string {
  const s = v.word(i);
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return v.fail(`expected a URL (${allowed.join(', ')}), got "${s}"`);
  }
  if (!allowed.includes(u.protocol.replace(/:$/, ''))) v.fail(`expected a ${allowed.join(' or ')} URL, got "${u.protocol}"`);
  return u.href;
}
