import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { itemGauges } from '../../broker/metrics.js';
import type { BrokerApi } from '../../broker/engine/api.js';
import type { SysFigure } from '../../broker/sys-figures.js';
import type { StatusRegistry, StatusReport } from '../../broker/status.js';
import { KafkaBridge, type KafkaBridgeState } from './bridge.js';
import type { KafkaBridgeConfig } from './config.js';
import { watchPublishers } from './publishers.js';

export { kafkaBridgeKeys, validateKafkaBridges, type KafkaBridgeConfig } from './config.js';

const STATES: KafkaBridgeState[] = ['connecting', 'delivering', 'failing', 'stopped'];

export interface KafkaBridges {
  start(): void;
  /** Leaves the sessions (what Kafka has not acknowledged stays in them) and closes the producers. */
  stop(): Promise<void>;
  bridges: KafkaBridge[];
  /** Their counters for `$SYS/broker/kafka_bridge/<name>/…` (broker/sys-figures.ts publishes them). */
  sysFigures(): SysFigure[];
}

/** The `kafka_bridge` blocks as running bridges, their metrics in /metrics and their state changes reported. */
export function createKafkaBridges(
  configs: KafkaBridgeConfig[],
  deps: {
    broker: Pick<BrokerApi, 'connectInternal' | 'on' | 'publish'>;
    log: Logger;
    metrics: Registry;
    /** Where each bridge reports its state, records and last error (the web view's Health tab). */
    status: StatusRegistry;
    onState(b: KafkaBridge): void;
  },
): KafkaBridges {
  const log = deps.log.child({ name: 'kafka-bridge' });
  const publishers = configs.length
    ? watchPublishers(
        deps.broker,
        configs.flatMap((c) => c.topics.map((t) => t.filter)),
      )
    : undefined;
  const reports = new Map<KafkaBridge, StatusReport>();
  const onState = (b: KafkaBridge) => {
    deps.onState(b);
    reports.get(b)?.state(b.state);
    if (b.state === 'failing' && b.reason) reports.get(b)?.error(b.reason);
    // retained, like a Mosquitto bridge's notification topic: a client subscribing later sees the current state
    const payload = Buffer.from(b.reason ? `${b.state}: ${b.reason}` : b.state);
    deps.broker.publish({ topic: `$SYS/broker/kafka_bridge/${b.config.name}/state`, payload, qos: 0, retain: true }, () => undefined);
  };
  const bridges = configs.map((c) => new KafkaBridge(c, deps.broker, publishers!, log, onState));
  for (const b of bridges)
    reports.set(
      b,
      deps.status.register('kafka-bridge', b.config.name, b.state, () => b.counters.delivered + b.subscriber.counters.published),
    );
  if (bridges.length) registerMetrics(bridges, deps.metrics);
  return {
    bridges,
    sysFigures: () => sysFigures(bridges),
    start: () => bridges.forEach((b) => b.start()),
    async stop() {
      publishers?.stop();
      await Promise.all(bridges.map((b) => b.stop()));
    },
  };
}

/**
 * Each bridge figure once: its /metrics series `mqprobe_kafka_bridge_<name>` and its
 * `$SYS/broker/kafka_bridge/<bridge>/<name without _total>` leaf.
 */
const FIGURES: [name: string, help: string, read: (b: KafkaBridge) => number][] = [
  ['records_total', 'MQTT messages Kafka acknowledged as records (rate() gives records/s).', (b) => b.counters.delivered],
  [
    'in_flight',
    'Messages taken from the broker session and not yet acknowledged by Kafka (more wait in the session).',
    (b) => b.counters.inFlight,
  ],
  ['unmapped_total', 'Messages not sent: their Kafka topic or key template has no value for the MQTT topic.', (b) => b.counters.unmapped],
  ['consumed_total', 'Kafka records published into the broker by kafka_subscribe and committed.', (b) => b.subscriber.counters.published],
  [
    'consumer_lag',
    'Records of the kafka_subscribe topics not yet committed by the group (-1: not known yet).',
    (b) => b.subscriber.counters.lag,
  ],
  [
    'refused_total',
    "Messages Kafka refused for themselves (over the topic's max.message.bytes): logged, not sent.",
    (b) => b.counters.refused,
  ],
  ['failures_total', 'Kafka requests that failed (each batch is retried until Kafka takes it).', (b) => b.counters.failures],
];

function registerMetrics(bridges: KafkaBridge[], registry: Registry): void {
  const gauges = itemGauges(registry, 'mqprobe_kafka_bridge_', 'bridge', bridges, (b) => b.config.name);
  gauges.state('Kafka bridge state: 1 for the state the bridge is in (connecting, delivering, failing, stopped).', STATES, (b) => b.state);
  for (const [name, help, read] of FIGURES) gauges.value(name, help, read);
}

/** The counters of each bridge under `$SYS/broker/kafka_bridge/<name>/` (its state is published as it changes). */
function sysFigures(bridges: KafkaBridge[]): SysFigure[] {
  return bridges.flatMap((b) =>
    FIGURES.map(([name, , read]): SysFigure => [`kafka_bridge/${b.config.name}/${name.replace(/_total$/, '')}`, read(b)]),
  );
}
