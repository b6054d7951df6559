import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { BrokerApi } from '../broker/engine/api.js';
import type { CaptureConfig } from './config.js';

/**
 * What capture needs from the broker, handed over by the composition root (app/assemble.ts):
 * the typed broker API for its events, its lookups of a client's connection and user, and the
 * mqtt sink's publishes.
 */
export interface CaptureHandle {
  broker: BrokerApi;
  log: Logger;
  metrics: Registry;
  config: CaptureConfig;
  /** Which broker: host name, instance id, mqprobe version. */
  info: { name: string; id: string; version: string };
}
