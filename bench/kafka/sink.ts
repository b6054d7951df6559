/**
 * Sustained capture events per second through the capture sinks' write(): into a real Apache Kafka (KRaft, one
 * node, test/helpers/kafka.ts, 512 MB heap) by capture_sink kafka, beside the file sink on the same batches.
 * Batches are pre-serialised ECS publish events of 2,000, as the capture pipeline hands them over.
 *
 *   npx tsx bench/kafka/sink.ts [seconds per run=15] [compression=none|gzip|lz4]
 *
 * Prints one JSON line per sink: events, seconds, events/s (a Kafka write resolves once every record is acknowledged).
 */
import { join } from 'node:path';
import pino from 'pino';
import { startKafka, newTopic } from '../../test/helpers/kafka.js';
import { tempDir } from '../../test/helpers/tmp.js';
import { publishEvents } from '../../test/elastic/events.js';
import { kafkaSink } from '../../capture/sinks/kafka.js';
import { fileSink } from '../../capture/sinks/file.js';
import { defaultKafkaClientConfig, COMPRESSIONS } from '../../capture/kafka.js';
import type { SinkIO } from '../../capture/runner.js';

const seconds = Number(process.argv[2] ?? 15);
const compression = (process.argv[3] ?? 'none') as (typeof COMPRESSIONS)[number];
const BATCH = 2000;
// one pool of batches for every run, so that making events is not measured
const batches = Array.from({ length: 20 }, (_, i) => publishEvents(BATCH, `client-${i}`));

async function run(name: string, sink: SinkIO): Promise<void> {
  const started = Date.now();
  let sent = 0;
  while (Date.now() - started < seconds * 1000) {
    await sink.write(batches[(sent / BATCH) % batches.length]);
    sent += BATCH;
  }
  const elapsed = (Date.now() - started) / 1000;
  await sink.close();
  console.log(
    JSON.stringify({ sink: name, events: sent, seconds: Number(elapsed.toFixed(1)), eventsPerSecond: Math.round(sent / elapsed) }),
  );
}

const cleanups: (() => unknown)[] = [];
try {
  const log = pino({ level: 'warn' });
  await run('file', fileSink({ path: join(tempDir(), 'events.ndjson'), maxBytes: 1024 ** 3, maxFiles: 1 }));
  const kafka = await startKafka({ teardown: (fn) => cleanups.push(fn) }, { autoCreate: false });
  const topic = await newTopic(kafka, 'bench');
  await run(
    `kafka (${compression}, acks all, idempotent)`,
    kafkaSink({
      target: { tls: false, brokers: [kafka.bootstrap], topic },
      client: { ...defaultKafkaClientConfig(), compression },
      log,
      clientId: 'bench',
    }),
  );
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
