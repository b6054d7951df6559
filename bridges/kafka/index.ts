import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { itemGauges } from '../../broker/metrics.js';
import type { BrokerApi } from '../../broker/engine/api.js';
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
}

/** The `kafka_bridge` blocks as running bridges, their metrics in /metrics and their state changes reported. */
export function createKafkaBridges(
  configs: KafkaBridgeConfig[],
  deps: { broker: Pick<BrokerApi, 'connectInternal' | 'on' | 'publish'>; log: Logger; metrics: Registry; onState(b: KafkaBridge): void },
): KafkaBridges {
  const log = deps.log.child({ name: 'kafka-bridge' });
  const publishers = configs.length
    ? watchPublishers(
        deps.broker,
        configs.flatMap((c) => c.topics.map((t) => t.filter)),
      )
    : undefined;
  const onState = (b: KafkaBridge) => {
    deps.onState(b);
    // retained, like a Mosquitto bridge's notification topic: a client subscribing later sees the current state
    const payload = Buffer.from(b.reason ? `${b.state}: ${b.reason}` : b.state);
    deps.broker.publish({ topic: `$SYS/broker/kafka_bridge/${b.config.name}/state`, payload, qos: 0, retain: true }, () => undefined);
  };
  const bridges = configs.map((c) => new KafkaBridge(c, deps.broker, publishers!, log, onState));
  if (bridges.length) registerMetrics(bridges, deps.metrics);
  return {
    bridges,
    start: () => bridges.forEach((b) => b.start()),
    async stop() {
      publishers?.stop();
      await Promise.all(bridges.map((b) => b.stop()));
    },
  };
}

function registerMetrics(bridges: KafkaBridge[], registry: Registry): void {
  const gauges = itemGauges(registry, 'mqprobe_kafka_bridge_', 'bridge', bridges, (b) => b.config.name);
  const gauge = gauges.value;
  gauges.state('Kafka bridge state: 1 for the state the bridge is in (connecting, delivering, failing, stopped).', STATES, (b) => b.state);
  gauge('records_total', 'MQTT messages Kafka acknowledged as records (rate() gives records/s).', (b) => b.counters.delivered);
  gauge(
    'in_flight',
    'Messages taken from the broker session and not yet acknowledged by Kafka (more wait in the session).',
    (b) => b.counters.inFlight,
  );
  gauge(
    'unmapped_total',
    'Messages not sent: their Kafka topic or key template has no value for the MQTT topic.',
    (b) => b.counters.unmapped,
  );
  gauge(
    'consumed_total',
    'Kafka records published into the broker by kafka_subscribe and committed.',
    (b) => b.subscriber.counters.published,
  );
  gauge(
    'consumer_lag',
    'Records of the kafka_subscribe topics not yet consumed by the group (-1: not known yet).',
    (b) => b.subscriber.counters.lag,
  );
  gauge(
    'refused_total',
    "Messages Kafka refused for themselves (over the topic's max.message.bytes): logged, not sent.",
    (b) => b.counters.refused,
  );
  gauge('failures_total', 'Kafka requests that failed (each batch is retried until Kafka takes it).', (b) => b.counters.failures);
}
