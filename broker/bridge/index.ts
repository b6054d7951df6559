import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { itemGauges } from '../metrics.js';
import type { BrokerApi } from '../engine/api.js';
import type { BrokerProbe } from '../probe.js';
import type { StatusRegistry, StatusReport } from '../status.js';
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
  /**
   * SIGHUP: the file's `connection` blocks as re-read. Removed ones stop, new ones start, changed ones are
   * replaced per their bridge_reload_type (Mosquitto 2.1). Their TLS files are read before anything changes,
   * so a missing one throws and every bridge keeps running as it was.
   */
  reload(configs: BridgeConfig[]): Promise<void>;
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
    /** Where the view's Health tab reads each bridge's state, messages and last error. */
    status: StatusRegistry;
  },
): Bridges {
  const log = deps.log.child({ name: 'bridge' });
  /** The running bridges, changed in place by reload: the metrics read this array. */
  const bridges: Bridge[] = [];
  let metricsRegistered = false;
  /** Each running bridge's entry in the status registry (a bridge made for a later replacement has none yet). */
  const reports = new WeakMap<Bridge, StatusReport>();
  const make = (c: BridgeConfig, tls: ReturnType<typeof tlsOptions>) => {
    const b: Bridge = new Bridge(c, deps.broker, deps.maxInflight, tls, log, (e) => {
      deps.probe.emit('bridge-state', e);
      const report = reports.get(b);
      report?.state(e.state);
      // waiting: a connection failed or was lost, and the reason says why (never a password)
      if (e.state === 'waiting' && e.reason) report?.error(e.reason);
    });
    return b;
  };
  const add = (b: Bridge) => {
    bridges.push(b);
    reports.set(
      b,
      deps.status.register('bridge', b.config.name, b.state, () => b.counters.messagesIn + b.counters.messagesOut),
    );
    if (!metricsRegistered) registerMetrics(bridges, deps.metrics);
    metricsRegistered = true;
  };
  const remove = (b: Bridge) => bridges.splice(bridges.indexOf(b), 1);
  /** Stops `old` (its local session is kept) and starts `next` in its place, under the same local client id. */
  const replace = async (old: Bridge, next: Bridge) => {
    if (stopped || !bridges.includes(old)) return; // a later reload or the shutdown got there first
    remove(old);
    await old.stop();
    next.takeOver(old);
    add(next);
    next.start();
  };
  // reloads and lazy replacements one after another: each finds the bridges the one before left
  let queue = Promise.resolve();
  const serial = (step: () => Promise<void>) => {
    const run = queue.then(step);
    queue = run.catch(() => undefined);
    return run;
  };
  let stopped = false;
  const apply = async (configs: BridgeConfig[]) => {
    if (stopped) return;
    const fresh = configs.map((c) => ({ config: c, tls: tlsOptions(c) })); // may throw: nothing changed yet
    const byName = new Map(bridges.map((b) => [b.config.name, b]));
    const steps: Promise<void>[] = [];
    for (const b of bridges.filter((b) => !configs.some((c) => c.name === b.config.name))) {
      log.info(`bridge ${b.config.name}: removed from the config, stopping`);
      remove(b);
      reports.get(b)?.remove();
      steps.push(
        b
          .stop()
          .then(() => b.forgetLocalSession())
          .then(() => log.info(`bridge ${b.config.name}: stopped, its local session ended`)),
      );
    }
    for (const { config, tls } of fresh) {
      const old = byName.get(config.name);
      if (!old) {
        log.info(`bridge ${config.name}: new in the config, starting`);
        const b = make(config, tls);
        add(b);
        b.start();
      } else if (config.reloadType === 'immediate') {
        log.info(`bridge ${config.name}: reloaded (bridge_reload_type immediate), reconnecting`);
        steps.push(replace(old, make(config, tls)));
      } else if (!sameSettings(old.config, config)) {
        log.info(`bridge ${config.name}: reloaded (bridge_reload_type lazy), the new settings apply at the next reconnection`);
        const next = make(config, tls);
        old.replaceAtNextConnect(() => void serial(() => replace(old, next)));
      }
    }
    await Promise.all(steps);
  };
  for (const c of configs) add(make(c, tlsOptions(c)));
  return {
    start: () => bridges.forEach((b) => b.start()),
    stop: async () => {
      stopped = true;
      await queue; // a replacement under way finishes first, so that its new bridge is stopped too
      await Promise.all(bridges.map((b) => b.stop()));
    },
    states: () => Object.fromEntries(bridges.map((b) => [b.config.name, b.state])),
    reload: (configs) => serial(() => apply(configs)),
  };
}

/** Two blocks with the same settings (where in the file they are does not count). */
function sameSettings(a: BridgeConfig, b: BridgeConfig): boolean {
  const settings = (c: BridgeConfig) => JSON.stringify({ ...c, pos: undefined });
  return settings(a) === settings(b);
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
