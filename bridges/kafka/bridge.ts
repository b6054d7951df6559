/**
 * One running `kafka_bridge`: an in-process MQTT session of this broker (client id `$kafka/<name>`, clean
 * session false, QoS 1 subscriptions) whose messages become Kafka records. It speaks MQTT with mqtt-packet
 * itself rather than through mqtt.js because a PUBACK must wait for Kafka while later messages keep coming:
 * mqtt.js reads no further packet until a custom ack is given, which would send one record per round trip.
 *
 * At-least-once: a QoS 1 message is acknowledged to the broker only once Kafka acknowledged its record, so while
 * Kafka is down the messages stay unacknowledged in the broker's session (and in its persistence across a
 * restart) and come again. A batch Kafka did not take is sent again whole: Kafka may hold a record twice.
 * The block's `kafka_subscribe` lines run beside it (subscriber.ts); the bridge's state covers both directions.
 */
import type { Duplex } from 'node:stream';
import mqttPacket from 'mqtt-packet';
import type { Logger } from 'pino';
import type { BrokerApi } from '../../broker/engine/api.js';
import { duplexPair } from '../../broker/duplex-pair.js';
import { apiCodes, explainKafkaError, RECORD_REFUSED } from '../../capture/kafka.js';
import { kafkaSender, type KafkaRecord } from '../../capture/kafka-sender.js';
import type { KafkaBridgeConfig } from './config.js';
import type { Publishers } from './publishers.js';
import { KafkaSubscriber } from './subscriber.js';

export type KafkaBridgeState = 'connecting' | 'delivering' | 'failing' | 'stopped';

/** Records per Kafka request, and how long a failing bridge waits before it tries again (doubling up to the cap). */
const BATCH = 1000;
const RETRY_MS = { base: 500, cap: 10_000 };
/** A broker connection that ended while running (a session taken over) is made again after this. */
const RECONNECT_MS = 1000;

interface Held {
  record?: KafkaRecord;
  /** Sends the PUBACK (QoS 1); nothing for QoS 0. */
  ack(): void;
}

export interface KafkaBridgeCounters {
  /** Records Kafka acknowledged. */
  delivered: number;
  /** Messages received and not yet acknowledged by Kafka. */
  inFlight: number;
  /** Messages whose topic template has no value (a `{N}` beyond the topic's levels): acknowledged, not sent. */
  unmapped: number;
  /** Failed Kafka requests (each retried). */
  failures: number;
  /** Messages Kafka refused for themselves (larger than the topic's max.message.bytes): logged, acknowledged, not sent. */
  refused: number;
}

export class KafkaBridge {
  state: KafkaBridgeState = 'connecting';
  /** The last error, worded for a user (never a password). */
  reason?: string;
  readonly counters: KafkaBridgeCounters = { delivered: 0, inFlight: 0, unmapped: 0, failures: 0, refused: 0 };
  readonly clientId: string;
  private readonly sender;
  readonly subscriber: KafkaSubscriber;
  /** Why each direction fails, if it does: the bridge is failing while either does. */
  private readonly failing: { out?: string; in?: string } = {};
  private held: Held[] = [];
  private flushing = false;
  private retryMs = RETRY_MS.base;
  private retryTimer?: NodeJS.Timeout;
  private stream?: Duplex;
  private stopping = false;

  constructor(
    readonly config: KafkaBridgeConfig,
    private readonly broker: Pick<BrokerApi, 'connectInternal' | 'publish'>,
    private readonly publishers: Publishers,
    private readonly log: Logger,
    private readonly onState: (b: KafkaBridge) => void,
  ) {
    this.clientId = `$kafka/${config.name}`;
    this.subscriber = new KafkaSubscriber(config, broker, log, (state, reason) => this.setState('in', state, reason));
    this.sender = kafkaSender({
      client: config.client,
      brokers: config.brokers,
      tls: config.tls,
      clientId: `mqprobe-bridge-${config.name}`,
    });
  }

  start(): void {
    this.subscriber.start();
    if (this.config.topics.length) this.connect();
  }

  private connect(): void {
    const [mine, brokerSide] = duplexPair();
    this.stream = mine;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (p) => this.onPacket(p, mine));
    parser.on('error', (err) => this.log.error({ bridge: this.config.name, err: err.message }, 'kafka bridge: bad packet from the broker'));
    mine.on('data', (chunk: Buffer) => parser.parse(chunk));
    mine.on('close', () => {
      if (this.stream === mine) this.stream = undefined;
      if (!this.stopping) setTimeout(() => !this.stopping && this.connect(), RECONNECT_MS).unref();
    });
    mine.on('error', () => undefined);
    this.broker.connectInternal(brokerSide, { maxUnacknowledged: this.config.maxHeld });
    mine.write(
      mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: this.clientId, clean: false, keepalive: 0 }),
    );
  }

  private onPacket(p: mqttPacket.Packet, stream: Duplex): void {
    if (p.cmd === 'connack') {
      if (p.returnCode) {
        this.setState('out', 'failing', `the broker refused the bridge's session (CONNACK ${p.returnCode})`);
        return;
      }
      const subscriptions = this.config.topics.map((t) => ({ topic: t.filter, qos: 1 as const }));
      stream.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions }));
    } else if (p.cmd === 'publish') {
      const messageId = p.messageId;
      const ack = p.qos > 0 ? () => stream.writable && stream.write(mqttPacket.generate({ cmd: 'puback', messageId })) : () => undefined;
      this.held.push({ record: this.toRecord(p), ack });
      this.counters.inFlight++;
      this.flushSoon();
    }
  }

  /** The record of a message, or none when its topic template has no value for this topic. */
  private toRecord(p: mqttPacket.IPublishPacket): KafkaRecord | undefined {
    const levels = p.topic.split('/');
    const map = this.config.topics.find((t) => this.publishers.matches(t.filter, p.topic));
    const topic = map?.topic(levels);
    const key = map?.key ? map.key(levels) : p.topic;
    if (!topic || key === undefined) return undefined;
    const headers = new Map<string, string>([
      ['mqtt.qos', String(p.qos)],
      ['mqtt.retain', String(!!p.retain)],
    ]);
    const publisher = this.publishers.take(p.topic, p.payload);
    if (publisher) headers.set('mqtt.client_id', publisher);
    const props = (p.properties as { userProperties?: Record<string, string | string[]> } | undefined)?.userProperties;
    for (const [k, v] of Object.entries(props ?? {})) headers.set(`mqtt.user.${k}`, Array.isArray(v) ? v.join(',') : v);
    return { topic, key, value: Buffer.isBuffer(p.payload) ? p.payload : Buffer.from(p.payload), headers };
  }

  private flushSoon(): void {
    if (!this.flushing && !this.retryTimer) void this.flush();
  }

  /** Sends what is held, batch after batch, one request at a time; acknowledges each batch once Kafka took it. */
  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.held.length && !this.stopping) {
        const batch = this.held.slice(0, BATCH);
        const records = batch.flatMap((h) => (h.record ? [h.record] : []));
        let refused = 0;
        try {
          if (records.length) refused = await this.send(records);
        } catch (err) {
          this.counters.failures++;
          await this.sender.discard();
          const topics = new Set(records.map((r) => r.topic));
          this.setState('out', 'failing', explainKafkaError(err, this.config.brokers, topics.size === 1 ? records[0]!.topic : undefined));
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.flushSoon();
          }, this.retryMs);
          this.retryMs = Math.min(this.retryMs * 2, RETRY_MS.cap);
          return;
        }
        this.held.splice(0, batch.length);
        this.counters.inFlight -= batch.length;
        this.counters.delivered += records.length - refused;
        this.counters.refused += refused;
        this.counters.unmapped += batch.length - records.length;
        if (records.length < batch.length)
          this.log.warn(
            { bridge: this.config.name, unmapped: this.counters.unmapped },
            'kafka bridge: a topic template has no value for a message topic (a {N} beyond its levels); not sent',
          );
        for (const h of batch) h.ack();
        this.retryMs = RETRY_MS.base;
        this.setState('out', 'delivering');
      }
    } finally {
      this.flushing = false;
    }
  }

  /**
   * Sends a batch; a record Kafka refuses for itself (over the topic's max.message.bytes) would hold the session
   * for good, so the batch then goes one record at a time and each refused record is counted, logged and
   * acknowledged. Returns how many were refused; throws for any other failure.
   */
  private async send(records: KafkaRecord[]): Promise<number> {
    try {
      await this.sender.send(records);
      return 0;
    } catch (err) {
      if (!RECORD_REFUSED.some((c) => apiCodes(err).has(c))) throw err;
      await this.sender.discard();
    }
    let refused = 0;
    for (const r of records) {
      try {
        await this.sender.send([r]);
      } catch (err) {
        if (!RECORD_REFUSED.some((c) => apiCodes(err).has(c))) throw err;
        await this.sender.discard();
        refused++;
        this.log.error(
          { bridge: this.config.name, kafkaTopic: r.topic, mqttTopic: r.key, bytes: r.value.length },
          `kafka bridge: Kafka refused a message for its size or content; not sent (${explainKafkaError(err, this.config.brokers, r.topic)})`,
        );
      }
    }
    return refused;
  }

  private setState(direction: 'out' | 'in', change: 'delivering' | 'failing' | 'stopped', why?: string): void {
    this.failing[direction] = change === 'failing' ? why : undefined;
    const reason = this.failing.out ?? this.failing.in;
    const state = change === 'stopped' ? 'stopped' : reason ? 'failing' : 'delivering';
    if (state === this.state && reason === this.reason) return;
    this.state = state;
    this.reason = reason;
    if (state === 'failing') this.log.error({ bridge: this.config.name }, `kafka bridge ${this.config.name}: ${reason}`);
    else this.log.info({ bridge: this.config.name }, `kafka bridge ${this.config.name}: ${state}`);
    this.onState(this);
  }

  /** Leaves the session (unacknowledged messages stay in it for the next start) and closes the producer. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    const s = this.stream;
    if (s && !s.destroyed) {
      s.write(mqttPacket.generate({ cmd: 'disconnect' }));
      s.end();
    }
    await Promise.all([this.sender.discard(), this.subscriber.stop()]);
    this.setState('out', 'stopped');
  }
}
