/**
 * capture_sink kafka against a real Apache Kafka 4.1 (KRaft, one node, from Maven Central: test/helpers/kafka.ts),
 * started once for the file, topics not created on demand: delivery, outage and restart. kafka-errors.test.ts has
 * SASL/TLS, refused records and the error messages (a second Kafka, so that each file stays short).
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { freePort, spawnCli, startTestBroker, tempDir, waitForPort } from '../helpers/broker.js';
import { missingSequences, newTopic, recordEvents, startKafka, stopped, type KafkaPeer } from '../helpers/kafka.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { scriptedSession, securityConf } from './session.js';

let kafka: KafkaPeer;

t.before(async () => {
  kafka = await startKafka(t, { autoCreate: false });
});

const topic = (config?: Record<string, string>) => newTopic(kafka, 'capture', config);
const events = recordEvents;
const holes = missingSequences;

/** publish-received events written to the disk queue segments under `dir` (the queue's files hold the event lines). */
function queued(dir: string): number {
  if (!existsSync(dir)) return 0;
  const segments = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.q'));
  return segments.reduce((n, f) => n + (readFileSync(join(dir, f), 'latin1').match(/"publish-received"/g)?.length ?? 0), 0);
}

/** The selected events of the topic, read again until `want` distinct sequences are there (or 60 s passed). */
async function eventually(
  name: string,
  select: (es: Record<string, any>[]) => Record<string, any>[],
  want: number,
): Promise<Record<string, any>[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const got = select(events(await kafka.records(name)));
    if (new Set(got.map((e) => e.event.sequence)).size >= want || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 300));
  }
}

t.test(
  "every event of a scripted session lands in the topic: the file sink's lines, key = client id, headers, sequence contiguous",
  async (t) => {
    const name = await topic();
    const dir = tempDir();
    const file = join(dir, 'events.ndjson');
    const b = await startTestBroker(
      t,
      `listener 0 127.0.0.1\n${securityConf(dir)}capture_sink kafka kafka://${kafka.bootstrap}/${name}\ncapture_sink file ${file}\ncapture_kafka_compression lz4\n`,
      { dir },
    );
    await scriptedSession(t, b.mqttUrl, b.port);
    const n = await stopped(b);
    const rs = await kafka.records(name);
    t.equal(rs.length, n, `all ${n} events arrived before stop() returned`);
    const reference = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    t.same(
      [...rs].sort((a, b) => JSON.parse(a.value).event.sequence - JSON.parse(b.value).event.sequence).map((r) => r.value),
      reference,
      'the same lines as the file sink',
    );
    t.same(holes(events(rs).map((e) => e.event.sequence)), [], 'event.sequence contiguous');
    const wrong = rs.filter((r) => {
      const e = JSON.parse(r.value);
      return (
        r.headers['event.action'] !== e.event.action ||
        r.headers['broker.id'] !== e.service.id ||
        (e.mqtt?.client_id && r.key !== e.mqtt.client_id)
      );
    });
    t.same(wrong, [], 'every record: key = client id, headers event.action and broker.id (service.id)');
    const byClient = new Map<string, Set<number>>();
    for (const r of rs) if (r.key) byClient.set(r.key, (byClient.get(r.key) ?? new Set()).add(r.partition));
    t.ok(
      [...byClient.values()].every((p) => p.size === 1),
      "one client's events stay in one partition",
    );
    t.match(
      b.broker.capture.stats().sinks.find((s) => s.name.startsWith('kafka:'))!,
      { delivered: n, dropped: 0 },
    );
  },
);

t.test('Kafka stopped for 10 s in the middle of 600 QoS 1 publishes: all 600 capture events arrive', async (t) => {
  const name = await topic();
  const dir = tempDir();
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink kafka kafka://${kafka.bootstrap}/${name}\ncapture_spool_dir ${join(dir, 'spool')}\ncapture_queue_max 100\n`,
    { dir },
  );
  const c = await connectClient(t, b.mqttUrl, { clientId: 'qos1-publisher' });
  for (let i = 0; i < 200; i++) await c.publishAsync(`plant/line/${i % 5}`, `m${i}`, { qos: 1 });
  await kafka.stop();
  const downAt = Date.now();
  for (let i = 200; i < 400; i++) await c.publishAsync(`plant/line/${i % 5}`, `m${i}`, { qos: 1 });
  await until(() => b.broker.capture.stats().sinks[0].down, 15_000, 'the sink to notice');
  await new Promise((r) => setTimeout(r, Math.max(0, 10_000 - (Date.now() - downAt))));
  await kafka.start();
  for (let i = 400; i < 600; i++) await c.publishAsync(`plant/line/${i % 5}`, `m${i}`, { qos: 1 });
  await c.endAsync();
  await until(
    () => b.broker.capture.stats().sinks[0].queued === 0 && b.broker.capture.stats().sinks[0].spoolBytes === 0,
    60_000,
    'the queue to drain',
  );
  const n = await stopped(b);
  const es = events(await kafka.records(name));
  const published = es.filter((e) => e.event.action === 'publish-received' && e.mqtt.client_id === 'qos1-publisher');
  t.equal(new Set(published.map((e) => e.event.sequence)).size, 600, 'all 600 publishes');
  t.same(holes(es.map((e) => e.event.sequence)), [], `all ${n} sequence numbers`);
  t.equal(es.filter((e) => e.event.action === 'capture-dropped').length, 0, 'nothing dropped');
  const s = b.broker.capture.stats().sinks[0];
  t.ok(s.failures > 0 && s.dropped === 0, `the outage was seen (${s.failures} failed writes) and nothing dropped`);
  t.match(readFileSync(b.logFile, 'utf8'), /no Kafka bootstrap server reachable at 127\.0\.0\.1:\d+/, 'the outage is named in the log');
});

t.test('SIGKILL of mqprobe while Kafka is down: what reached the disk queue is delivered after the restart', async (t) => {
  const name = await topic();
  const dir = tempDir();
  const port = await freePort();
  const conf = join(dir, 'mqprobe.conf');
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\ncapture_sink kafka kafka://${kafka.bootstrap}/${name}\ncapture_spool_dir ${join(dir, 'spool')}\ncapture_queue disk\ncapture_queue_sync_interval 0\nlog_dest file ${join(dir, 'broker.log')}\nuser root\n`,
  );
  const run = async () => {
    const p = spawnCli(t, ['-c', conf]);
    await waitForPort(port, 30_000);
    return p;
  };
  const first = await run();
  await kafka.stop();
  const c = await connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'before-kill', reconnectPeriod: 0 });
  for (let i = 0; i < 100; i++) await c.publishAsync('devices/k', `m${i}`, { qos: 1 });
  await c.endAsync();
  // kill -9 keeps what reached the disk queue (what had not yet is named by a crash report): wait until all 100 did
  await until(() => queued(join(dir, 'spool', 'queue')) >= 100, 30_000, 'the 100 publishes in the disk queue');
  first.child.kill('SIGKILL');
  await first.exited;
  await kafka.start();
  const second = await run();
  const firstRun = await eventually(
    name,
    (es) => es.filter((e) => e.mqtt?.client_id === 'before-kill' && e.event.action === 'publish-received'),
    100,
  );
  second.child.kill('SIGTERM');
  await second.exited;
  const arrived = new Set(firstRun.map((e) => e.event.sequence)).size;
  t.equal(arrived, 100, 'all 100 publishes of the killed run arrived');
  if (arrived !== 100) t.comment(readFileSync(join(dir, 'broker.log'), 'utf8').split('\n').slice(-40).join('\n'));
});
