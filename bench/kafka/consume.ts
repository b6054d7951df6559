/**
 * Records per second taken from a real Apache Kafka (KRaft, one node, test/helpers/kafka.ts) into the broker by a
 * kafka_bridge's `kafka_subscribe` (the Kafka → MQTT direction): an in-process mqprobe starts, an mqtt.js QoS 1
 * subscriber connects, then records (200 bytes, a topic of three partitions) are produced in batches of 5,000; the
 * clock runs from the first message the subscriber receives to the last (the consumer group's join is not counted).
 *
 *   npx tsx bench/kafka/consume.ts [records=20000]
 *
 * Prints one JSON line: records, seconds, records/s.
 */
import { Producer, stringSerializers } from '@platformatic/kafka';
import { startTestBroker } from '../../test/helpers/broker.js';
import { startKafka, newTopic } from '../../test/helpers/kafka.js';
import { connectClient } from '../../test/helpers/mqtt.js';

const total = Number(process.argv[2] ?? 20_000);
const cleanups: (() => unknown)[] = [];
const t = { teardown: (fn: () => unknown) => cleanups.push(fn) };
try {
  const kafka = await startKafka(t, { autoCreate: false });
  const topic = await newTopic(kafka, 'bench-consume');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nkafka_bridge bench\nkafka_brokers ${kafka.bootstrap}\nkafka_subscribe ${topic} bench/{key}\n`,
  );
  let received = 0;
  let first = 0;
  let resolve = () => undefined as void;
  const done = new Promise<void>((r) => (resolve = r));
  const sub = await connectClient(t, b.mqttUrl, { clientId: 'bench-sub' }, (c) =>
    c.on('message', () => {
      if (received++ === 0) first = Date.now();
      if (received === total) resolve();
    }),
  );
  await sub.subscribeAsync('bench/#', { qos: 1 });
  const producer = new Producer({ clientId: 'bench-producer', bootstrapBrokers: [kafka.bootstrap], serializers: stringSerializers });
  cleanups.push(() => producer.close());
  const value = 'x'.repeat(200);
  for (let i = 0; i < total; i += 5000)
    await producer.send({
      messages: Array.from({ length: Math.min(5000, total - i) }, (_, j) => ({ topic, key: `k${(i + j) % 10}`, value })),
    });
  const progress = setInterval(() => console.error(`received ${received}`), 5000);
  await done;
  clearInterval(progress);
  const seconds = (Date.now() - first) / 1000;
  console.log(JSON.stringify({ records: total, seconds: Number(seconds.toFixed(1)), recordsPerSecond: Math.round(total / seconds) }));
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
