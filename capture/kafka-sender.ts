/**
 * A @platformatic/kafka producer as mqprobe's Kafka clients use it (the capture sink, the MQTT → Kafka bridge):
 * a send resolves once Kafka acknowledged every record, fails soon with an error explainKafkaError can word,
 * and after a failure the producer is made anew (its idempotence sequence numbers may no longer match the
 * broker's).
 */
import { Producer, stringSerializers } from '@platformatic/kafka';
import { clientOptions, type KafkaClientConfig } from './kafka.js';

/**
 * A send that has not settled by then is abandoned (the producer closed, the batch offered again): the client
 * was seen to leave a send pending for good after Kafka restarts.
 */
export const SEND_DEADLINE_MS = 20_000;

export type KafkaRecord = { topic: string; key?: string; value: string | Buffer; headers: Map<string, string> };

export interface KafkaSender {
  /** Resolves once Kafka acknowledged all records; metadata first, so a missing topic or no cluster fails at once. */
  send(records: KafkaRecord[]): Promise<void>;
  /** Drops the producer (what is in flight is abandoned: the caller still holds it). */
  discard(): Promise<void>;
}

export function kafkaSender(o: { client: KafkaClientConfig; brokers: string[]; tls: boolean; clientId: string }): KafkaSender {
  let producer: Producer<string, string | Buffer, string, string> | undefined;
  const make = () =>
    new Producer<string, string | Buffer, string, string>({
      ...clientOptions(o.client, o.brokers, o.tls, o.clientId),
      serializers: { ...stringSerializers, value: (v?: string | Buffer) => (typeof v === 'string' ? Buffer.from(v) : v) },
      idempotent: o.client.idempotent,
      acks: o.client.acks === 'all' ? -1 : 1,
      compression: o.client.compression,
      autocreateTopics: false,
    });
  const discard = async () => {
    const p = producer;
    producer = undefined;
    if (p) await new Promise<void>((resolve) => p.close(true, () => resolve()));
  };
  return {
    async send(records) {
      const p = (producer ??= make());
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from Kafka within ${SEND_DEADLINE_MS / 1000} s`)), SEND_DEADLINE_MS);
      });
      const topics = [...new Set(records.map((r) => r.topic))];
      try {
        await Promise.race([p.metadata({ topics }).then(() => p.send({ messages: records })), deadline]);
      } finally {
        clearTimeout(timer);
      }
    },
    discard,
  };
}
