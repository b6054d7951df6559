/**
 * `capture_sink kafka kafka://host:port[,host:port…]/<topic>` (or `kafkas://` for TLS): each capture event is
 * one Kafka record, key = the MQTT client id (one client's events stay ordered in one partition), value = the
 * ECS line the other sinks write, headers `event.action` and `broker.id`
 * (service.id of the event: the broker instance).
 *
 * Delivery: `write` resolves once Kafka acknowledged the whole batch (acks all by default, idempotent producer);
 * otherwise it rejects and the SinkRunner keeps the batch (memory queue, spool) and offers it again, so an outage
 * or a partition without a leader loses nothing. A record Kafka refuses for itself (larger than the topic's
 * max.message.bytes) does not hold up the rest: it is counted, and kept in the topic as a small
 * `pipeline_error` record carrying its event.id, sequence, size and the start of the original.
 */
import type { Logger } from 'pino';
import { apiCodes, explainKafkaError, parseKafkaTarget, RECORD_REFUSED, type KafkaClientConfig, type KafkaTarget } from '../kafka.js';
import { kafkaSender, type KafkaRecord as Record } from '../kafka-sender.js';
import { DATASET } from '../../elastic/assets.js';
import { SinkUnavailableError } from './elasticsearch.js';
import type { SinkDefinition } from './definition.js';
import type { SinkIO } from '../runner.js';

/** How much of a refused record's line its pipeline_error record keeps. */
const ORIGINAL_HEAD = 256;

export interface KafkaSinkOptions {
  target: KafkaTarget;
  client: KafkaClientConfig;
  log: Logger;
  /** The producer's client.id as Kafka's logs and quotas know it. */
  clientId: string;
}

export function kafkaSink(o: KafkaSinkOptions): Required<Pick<SinkIO, 'refused'>> & SinkIO {
  const { topic, brokers } = o.target;
  let rejected = 0;
  let failing = false;
  const { send, discard } = kafkaSender({ client: o.client, brokers, tls: o.target.tls, clientId: o.clientId });

  const toRecord = (line: string): Record => {
    let e: { mqtt?: { client_id?: unknown }; event?: { action?: unknown }; service?: { id?: unknown } } = {};
    try {
      e = JSON.parse(line) as typeof e;
    } catch {
      // not JSON (never from capture itself): sent as it is, without key
    }
    const headers = new Map<string, string>();
    if (typeof e.event?.action === 'string') headers.set('event.action', e.event.action);
    if (typeof e.service?.id === 'string') headers.set('broker.id', e.service.id);
    return { topic, value: line, headers, ...(typeof e.mqtt?.client_id === 'string' ? { key: e.mqtt.client_id } : {}) };
  };

  const envelope = (line: string, err: unknown): Record => {
    let id: unknown, sequence: unknown, action: unknown, ts: unknown;
    try {
      const e = JSON.parse(line) as { event?: { id?: unknown; sequence?: unknown; action?: unknown }; '@timestamp'?: unknown };
      ({ id, sequence, action } = e.event ?? {});
      ts = e['@timestamp'];
    } catch {
      // kept with what is known: its size and start
    }
    const reason = explainKafkaError(err, brokers, topic);
    const value = JSON.stringify({
      '@timestamp': typeof ts === 'string' ? ts : new Date().toISOString(),
      message: `mqprobe capture event refused by Kafka: ${reason}`,
      event: { kind: 'pipeline_error', dataset: DATASET, id, sequence, action, original: line.slice(0, ORIGINAL_HEAD) },
      error: { type: 'record_refused', message: reason, size: Buffer.byteLength(line) },
    });
    return { topic, value, headers: new Map([['event.action', 'pipeline_error']]) };
  };

  /** One record at a time, so that only the refused ones are replaced by their pipeline_error record. */
  const oneByOne = async (lines: string[]) => {
    for (const line of lines) {
      try {
        await send([toRecord(line)]);
      } catch (err) {
        await discard();
        if (!RECORD_REFUSED.some((c) => apiCodes(err).has(c))) throw err;
        rejected++;
        o.log.error(
          { topic, bytes: Buffer.byteLength(line), rejected },
          `Kafka refused a capture event for its size or content; kept as a pipeline_error record (${explainKafkaError(err, brokers, topic)})`,
        );
        await send([envelope(line, err)]);
      }
    }
  };

  return {
    async write(lines) {
      if (lines.length === 0) return;
      try {
        try {
          await send(lines.map(toRecord));
        } catch (err) {
          await discard();
          if (!RECORD_REFUSED.some((c) => apiCodes(err).has(c))) throw err;
          await oneByOne(lines);
        }
        if (failing) o.log.info({ topic, brokers }, 'Kafka takes capture events again');
        failing = false;
      } catch (err) {
        const why = explainKafkaError(err, brokers, topic);
        if (!failing) o.log.error({ topic, brokers }, why);
        failing = true;
        throw new SinkUnavailableError(why);
      }
    },
    async close() {
      await discard();
    },
    refused: () => rejected,
  };
}

export const kafkaSinkDefinition: SinkDefinition = {
  kinds: ['kafka'],
  usage: 'kafka kafka://host:port[,host:port…]/<topic> | kafka kafkas://host:port[,…]/<topic>',
  parse(v) {
    v.count(2);
    const target = parseKafkaTarget(v.word(1));
    if (typeof target === 'string') v.fail(target);
    return { kind: 'kafka', target: v.word(1) };
  },
  name: (c) => {
    const t = parseKafkaTarget(c.target!) as KafkaTarget;
    return `kafka:${t.brokers[0]}/${t.topic}`;
  },
  create(c, env) {
    return {
      io: kafkaSink({
        target: parseKafkaTarget(c.target!) as KafkaTarget,
        client: env.config.kafka,
        log: env.log.child({ name: 'capture.kafka' }),
        clientId: 'mqprobe-capture',
      }),
      spools: true,
    };
  },
};
