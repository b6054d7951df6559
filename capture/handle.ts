import type { Aedes, Client } from 'aedes';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { BrokerProbe, ConnInfo } from '../broker/probe.js';
import type { CaptureConfig } from './config.js';

/**
 * What capture needs from the broker, handed over by the broker assembly (capture imports no
 * broker internals): the Aedes instance for its events and for the mqtt sink's publishes, the
 * probe for what Aedes has no event for, and two lookups of the broker's own bookkeeping.
 */
export interface CaptureHandle {
  aedes: Aedes;
  probe: BrokerProbe;
  log: Logger;
  metrics: Registry;
  config: CaptureConfig;
  /** Which broker: host name, instance id (Aedes id), mqprobe version. */
  info: { name: string; id: string; version: string };
  /** The transport facts of a client's connection. */
  connOf(client: Client): ConnInfo | undefined;
  /** The user name a client authenticated as (never its password). */
  usernameOf(client: Client): string | undefined;
}
