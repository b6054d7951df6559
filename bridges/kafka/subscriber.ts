/**
 * The Kafka → MQTT direction of a `kafka_bridge` (`kafka_subscribe`): a consumer in the block's group reads the
 * topics and publishes their records into the broker (QoS 1, not retained) in batches: the records already
 * fetched (at most BATCH) are published one after the other, in order, and once the broker took all of them
 * (stored and routed) the highest offset of each partition in the batch is committed, one commit per partition
 * instead of one Kafka round trip per record. A restart of mqprobe or of Kafka loses nothing: the records of a
 * batch whose commit did not happen are published again (at-least-once).
 */
import { Consumer, stringDeserializers, type Message } from '@platformatic/kafka';
import type { Logger } from 'pino';
import type { BrokerApi } from '../../broker/engine/api.js';
import { clientOptions, explainKafkaError } from '../../capture/kafka.js';
import type { KafkaBridgeConfig } from './config.js';

const RETRY_MS = { base: 500, cap: 10_000 };
const LAG_INTERVAL_MS = 5000;
/** Records published before their offsets are committed: bounds what a restart publishes again. */
const BATCH = 500;

type Record = Message<string, Buffer, string, string>;

export interface SubscriberCounters {
  /** Records published into the broker (committed with the rest of their batch). */
  published: number;
  /** Records whose MQTT template had no value (a key that is not one topic level): committed, not published. */
  unmapped: number;
  /** Records in the subscribed partitions after the group's position (from the consumer's lag monitor); -1 unknown. */
  lag: number;
}

export class KafkaSubscriber {
  readonly counters: SubscriberCounters = { published: 0, unmapped: 0, lag: -1 };
  private consumer?: Consumer<string, Buffer, string, string>;
  private stopping = false;
  private retryMs = RETRY_MS.base;
  private retryTimer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(
    private readonly config: KafkaBridgeConfig,
    private readonly broker: Pick<BrokerApi, 'publish'>,
    private readonly log: Logger,
    private readonly report: (state: 'delivering' | 'failing', reason?: string) => void,
  ) {}

  start(): void {
    if (this.config.subscriptions.length) this.running = this.run();
  }

  private async run(): Promise<void> {
    const topics = this.config.subscriptions.map((s) => s.kafkaTopic);
    const consumer = (this.consumer = new Consumer<string, Buffer, string, string>({
      ...clientOptions(this.config.client, this.config.brokers, this.config.tls, `mqprobe-bridge-${this.config.name}`),
      groupId: this.config.group,
      deserializers: { ...stringDeserializers, value: (b?: Buffer) => b ?? Buffer.alloc(0) },
    }));
    consumer.on('consumer:lag', (offsets: Map<string, bigint[]>) => {
      // a negative entry is a partition this consumer has no position in (not assigned to it): not a figure
      const known = topics.flatMap((t) => (offsets.get(t) ?? []).filter((l) => l >= 0n));
      this.counters.lag = known.length ? Number(known.reduce((a, b) => a + b, 0n)) : -1;
    });
    try {
      const stream = await consumer.consume({ topics, mode: 'committed', fallbackMode: 'earliest', autocommit: false, maxWaitTime: 500 });
      consumer.startLagMonitoring({ topics }, LAG_INTERVAL_MS);
      // a figure as soon as the partitions' positions are known (at the start and after a rebalance), not 5 s later
      stream.on('offsets', () => void consumer.getLag({ topics }).catch(() => undefined));
      this.report('delivering');
      this.retryMs = RETRY_MS.base;
      for await (const first of stream as AsyncIterable<Record>) {
        // the records the stream holds already join the first one; none is waited for
        const batch = [first];
        for (let m: Record | null; batch.length < BATCH && (m = stream.read() as Record | null);) batch.push(m);
        for (const m of batch) await this.deliver(m);
        await Promise.all(lastPerPartition(batch).map((m) => m.commit()));
      }
    } catch (err) {
      if (this.stopping) return;
      this.report('failing', explainKafkaError(err, this.config.brokers, topics.length === 1 ? topics[0] : undefined));
    } finally {
      consumer.stopLagMonitoring();
      await new Promise<void>((resolve) => consumer.close(true, () => resolve()));
    }
    if (this.stopping) return;
    // the stream ended or failed: a new consumer resumes from the last committed offsets
    this.retryTimer = setTimeout(() => (this.running = this.run()), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MS.cap);
  }

  /** Resolves once the broker took the message (QoS 1: stored and routed). */
  private async deliver(m: Record): Promise<void> {
    const sub = this.config.subscriptions.find((s) => s.kafkaTopic === m.topic);
    const topic = sub?.mqttTopic(m.key || undefined);
    if (!topic) {
      this.counters.unmapped++;
      this.log.warn(
        { bridge: this.config.name, kafkaTopic: m.topic, partition: m.partition, offset: String(m.offset) },
        'kafka bridge: a record key is not one MQTT topic level (empty, or holds / + #); not published',
      );
      return;
    }
    await new Promise<void>((resolve, reject) =>
      this.broker.publish({ topic, payload: m.value, qos: 1, retain: false }, (err) => (err ? reject(err) : resolve())),
    );
    this.counters.published++;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    const c = this.consumer;
    if (c) await new Promise<void>((resolve) => c.close(true, () => resolve()));
    await this.running?.catch(() => undefined);
  }
}

/** The last record of each topic-partition in a batch: committing it commits every record before it there. */
function lastPerPartition(batch: Record[]): Record[] {
  const last = new Map<string, Record>();
  for (const m of batch) last.set(`${m.topic}:${m.partition}`, m);
  return [...last.values()];
}
