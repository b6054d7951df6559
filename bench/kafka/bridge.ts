/**
 * MQTT messages per second bridged into a real Apache Kafka (KRaft, one node, test/helpers/kafka.ts) by a
 * kafka_bridge block: an mqtt.js client publishes QoS 1 messages (200 bytes, 1,000 in flight) into an in-process
 * mqprobe; the clock stops when the bridge's /metrics say Kafka acknowledged all of them.
 *
 *   npx tsx bench/kafka/bridge.ts [messages=20000]
 *
 * Prints one JSON line: messages, seconds, messages/s.
 */
import { startTestBroker } from '../../test/helpers/broker.js';
import { startKafka, newTopic } from '../../test/helpers/kafka.js';
import { connectClient } from '../../test/helpers/mqtt.js';

const total = Number(process.argv[2] ?? 20_000);
const WINDOW = 1000;
const cleanups: (() => unknown)[] = [];
const t = { teardown: (fn: () => unknown) => cleanups.push(fn) };
try {
  const kafka = await startKafka(t, { autoCreate: false });
  const topic = await newTopic(kafka, 'bench-bridge');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\nkafka_bridge bench\nkafka_brokers ${kafka.bootstrap}\nkafka_topic bench/# ${topic}\n`,
  );
  const c = await connectClient(t, b.mqttUrl);
  const payload = Buffer.alloc(200, 'x');
  const delivered = async () =>
    Number(/mqprobe_kafka_bridge_records_total\{bridge="bench"\} (\d+)/.exec(await b.broker.metrics.metrics())?.[1] ?? 0);
  const started = Date.now();
  for (let sent = 0; sent < total; sent += WINDOW)
    await Promise.all(
      Array.from({ length: Math.min(WINDOW, total - sent) }, (_, i) => c.publishAsync(`bench/${(sent + i) % 10}`, payload, { qos: 1 })),
    );
  while ((await delivered()) < total) await new Promise((r) => setTimeout(r, 50));
  const seconds = (Date.now() - started) / 1000;
  console.log(JSON.stringify({ messages: total, seconds: Number(seconds.toFixed(1)), messagesPerSecond: Math.round(total / seconds) }));
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
