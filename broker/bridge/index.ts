import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { itemGauges } from '../metrics.js';
import type { BrokerApi } from '../engine/api.js';
import type { BrokerProbe } from '../probe.js';
import { Bridge, type BridgeState } from './bridge.js';
import type { BridgeConfig } from './config.js';
import { tlsOptions } from './remote-stream.js';

export type { BridgeEvent, BridgeState } from './bridge.js';

const STATES: BridgeState[] = ['connecting', 'connected', 'waiting', 'idle', 'stopped'];

export interface Bridges {
  /** Connects the automatic and once bridges (lazy ones wait for their threshold). */
  start(): void;
  /** Notifies the remotes and disconnects every bridge. */
  stop(): Promise<void>;
  /** Each bridge's live state, for /healthz. */
  states(): Record<string, BridgeState>;
}

/**
 * The `connection` blocks of the config as running bridges. Their TLS files are read here, so a missing
 * one stops the start with its key and path. State changes go to the probe (`bridge-state`: capture and
 * logs), counters to /metrics.
 */
export function createBridges(
  configs: BridgeConfig[],
  deps: {
    broker: Pick<BrokerApi, 'connectInternal' | 'publish'>;
    /** max_inflight_messages: how many local QoS 1/2 messages each bridge has in flight to its remote. */
    maxInflight: number;
    probe: BrokerProbe;
    log: Logger;
    metrics: Registry;
  },
): Bridges {
  const log = deps.log.child({ name: 'bridge' });
  const bridges = configs.map(
    (c) => new Bridge(c, deps.broker, deps.maxInflight, tlsOptions(c), log, (e) => deps.probe.emit('bridge-state', e)),
  );
  if (bridges.length) registerMetrics(bridges, deps.metrics);
  return {
    start: () => bridges.forEach((b) => b.start()),
    stop: async () => void (await Promise.all(bridges.map((b) => b.stop()))),
    states: () => Object.fromEntries(bridges.map((b) => [b.config.name, b.state])),
  };
}

function registerMetrics(bridges: Bridge[], registry: Registry): void {
  const gauges = itemGauges(registry, 'mqprobe_bridge_', 'connection', bridges, (b) => b.config.name);
  const counter = gauges.value;
  gauges.state('Bridge state: 1 for the state the bridge is in (connecting, connected, waiting, idle, stopped).', STATES, (b) => b.state);
  counter('messages_in_total', 'Messages taken from the remote into the local broker.', (b) => b.counters.messagesIn);
  counter('messages_out_total', 'Messages acknowledged by the remote (QoS 0: sent).', (b) => b.counters.messagesOut);
  counter('bytes_in_total', 'Payload bytes taken from the remote.', (b) => b.counters.bytesIn);
  counter('bytes_out_total', 'Payload bytes sent to the remote.', (b) => b.counters.bytesOut);
  counter(
    'dropped_total',
    'Out messages dropped (QoS 0 while the remote is down, over bridge_max_packet_size, unmappable topic).',
    (b) => b.counters.dropped,
  );
  counter(
    'queued',
    'Out messages handed to the remote and not yet acknowledged (more wait in the local session).',
    (b) => b.counters.queued,
  );
  counter('reconnects_total', 'Reconnection attempts scheduled after a lost or failed connection.', (b) => b.counters.reconnects);
}
