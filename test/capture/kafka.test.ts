/**
 * capture_sink kafka against a real Apache Kafka 4.1 (KRaft, one node, from Maven Central: test/helpers/kafka.ts),
 * started once for the file with a plaintext listener and a SASL_SSL one, topics not created on demand.
 */
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { loadConfig } from '../../app/config.js';
import { freePort, spawnCli, startTestBroker, tempDir, waitForPort, type TestBroker } from '../helpers/broker.js';
import { startKafka, type KafkaPeer, type KafkaRecord } from '../helpers/kafka.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { scriptedSession, securityConf } from './session.js';

let kafka: KafkaPeer;
let topics = 0;

t.before(async () => {
  kafka = await startKafka(t, { secure: true, autoCreate: false });
});

async function topic(config?: Record<string, string>): Promise<string> {
  const name = `capture-${++topics}`;
  await kafka.createTopic(name, { partitions: 3, config });
  return name;
}

const events = (rs: KafkaRecord[]) => rs.map((r) => JSON.parse(r.value) as Record<string, any>);

/** The sequence numbers 1..max that are missing (duplicates from a resent batch are allowed: at-least-once). */
function holes(seqs: number[]): number[] {
  const have = new Set(seqs);
  const max = Math.max(0, ...seqs);
  return Array.from({ length: max }, (_, i) => i + 1).filter((s) => !have.has(s));
}

async function stopped(b: TestBroker): Promise<number> {
  await b.broker.close();
  return b.broker.capture.stats().recorded;
}

t.test('every event of a scripted session lands in the topic: the file sink\'s lines, key = client id, headers, sequence contiguous', async (t) => {
  const name = await topic();
  const dir = tempDir();
  const file = join(dir, 'events.ndjson');
  const b = await startTestBroker(t, `listener 0 127.0.0.1\n${securityConf(dir)}capture_sink kafka kafka://${kafka.bootstrap}/${name}\ncapture_sink file ${file}\ncapture_kafka_compression lz4\n`, { dir });
  await scriptedSession(t, b.mqttUrl, b.port);
  const n = await stopped(b);
  const rs = await kafka.records(name, n);
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
    return r.headers['event.action'] !== e.event.action || r.headers['broker.id'] !== e.service.id || (e.mqtt?.client_id && r.key !== e.mqtt.client_id);
  });
  t.same(wrong, [], 'every record: key = client id, headers event.action and broker.id (service.id)');
  const byClient = new Map<string, Set<number>>();
  for (const r of rs) if (r.key) byClient.set(r.key, (byClient.get(r.key) ?? new Set()).add(r.partition));
  t.ok([...byClient.values()].every((p) => p.size === 1), "one client's events stay in one partition");
  t.match(b.broker.capture.stats().sinks.find((s) => s.name.startsWith('kafka:'))!, { delivered: n, dropped: 0 });
});

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
  await until(() => b.broker.capture.stats().sinks[0].queued === 0 && b.broker.capture.stats().sinks[0].spoolBytes === 0, 60_000, 'the queue to drain');
  const n = await stopped(b);
  const es = events(await kafka.records(name, n));
  const published = es.filter((e) => e.event.action === 'publish-received' && e.mqtt.client_id === 'qos1-publisher');
  t.equal(new Set(published.map((e) => e.event.sequence)).size, 600, 'all 600 publishes');
  t.same(holes(es.map((e) => e.event.sequence)), [], `all ${n} sequence numbers`);
  t.equal(es.filter((e) => e.event.action === 'capture-dropped').length, 0, 'nothing dropped');
  const s = b.broker.capture.stats().sinks[0];
  t.ok(s.failures > 0 && s.dropped === 0, `the outage was seen (${s.failures} failed writes) and nothing dropped`);
  t.match(readFileSync(b.logFile, 'utf8'), /no Kafka bootstrap server reachable at 127\.0\.0\.1:\d+/, 'the outage is named in the log');
});

t.test('SIGKILL of mqprobe while Kafka is down: the disk queue delivers after the restart', async (t) => {
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
  first.child.kill('SIGKILL');
  await first.exited;
  await kafka.start();
  const second = await run();
  const rs = await kafka.records(name, 100, 30_000);
  second.child.kill('SIGTERM');
  await second.exited;
  const firstRun = events(rs).filter((e) => e.mqtt?.client_id === 'before-kill' && e.event.action === 'publish-received');
  t.equal(new Set(firstRun.map((e) => e.event.sequence)).size, 100, 'all 100 publishes of the killed run arrived');
});

t.test('SASL/SCRAM-SHA-512 over TLS (kafkas://), CA file, password from a file; a wrong password is a clear error, never logged', async (t) => {
  const s = kafka.secure!;
  const name = await topic();
  const dir = tempDir();
  const pw = join(dir, 'kafka.pw');
  const conf = (password: string) => {
    writeFileSync(pw, `${password}\n`);
    return `listener 0 127.0.0.1\n${securityConf(dir)}capture_sink kafka kafkas://${s.bootstrap}/${name}\ncapture_kafka_sasl_mechanism scram-sha-512\ncapture_kafka_username ${s.user}\ncapture_kafka_password_file ${pw}\ncapture_kafka_cafile ${s.pki.caCert}\ncapture_kafka_compression gzip\n`;
  };
  const wrong = `wrong-${Date.now()}`;
  const bad = await startTestBroker(t, conf(wrong), { dir });
  const c1 = await connectClient(t, bad.mqttUrl, { clientId: 'refused' });
  await c1.publishAsync('a/b', 'x');
  await until(() => bad.broker.capture.stats().sinks[0].failures > 0, 15_000, 'a failed write');
  const badLog = readFileSync(bad.logFile, 'utf8');
  t.match(badLog, /Kafka refused the SASL authentication/, 'the wrong password is named');
  t.equal(badLog.indexOf(wrong), -1, 'the password is not in the log');
  await c1.endAsync();
  await bad.broker.close();

  const b = await startTestBroker(t, conf(s.password), { dir: tempDir() });
  await scriptedSession(t, b.mqttUrl, b.port);
  const n = await stopped(b);
  const rs = await kafka.records(name, n);
  t.same(holes(events(rs).map((e) => e.event.sequence)), [], `all ${n} events over SASL_SSL`);
  t.equal(readFileSync(b.logFile, 'utf8').indexOf(s.password), -1, 'the password is not in the log');
});

t.test('a record above the topic\'s max.message.bytes is counted and kept as pipeline_error; the rest is delivered', async (t) => {
  const name = await topic({ 'max.message.bytes': '4000' });
  const b = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink kafka kafka://${kafka.bootstrap}/${name}\ncapture_payload full\n`);
  const c = await connectClient(t, b.mqttUrl, { clientId: 'big' });
  for (let i = 0; i < 20; i++) await c.publishAsync('big/x', i === 10 ? 'x'.repeat(10_000) : `small ${i}`, { qos: 1 });
  await c.endAsync();
  const n = await stopped(b);
  const es = events(await kafka.records(name, n));
  t.same(holes(es.map((e) => e.event.sequence)), [], 'every sequence is in the topic (the big one as its pipeline_error record)');
  const errors = es.filter((e) => e.event.kind === 'pipeline_error');
  t.equal(errors.length, 1, 'one pipeline_error record');
  t.match(errors[0], { event: { action: 'publish-received', original: String }, error: { type: 'record_refused', size: Number } });
  t.ok(errors[0].error.size > 10_000);
  t.equal(es.filter((e) => e.event.action === 'publish-received' && e.event.kind !== 'pipeline_error').length, 19, 'the 19 others delivered');
  t.match(readFileSync(b.logFile, 'utf8'), /"rejected":1/, 'counted');
});

t.test('clear errors: a missing topic with auto-creation off, an unreachable bootstrap server', async (t) => {
  const closed = await freePort();
  for (const [url, why] of [
    [`kafka://${kafka.bootstrap}/no-such-topic`, /Kafka topic \\"no-such-topic\\" does not exist and the broker does not create topics on demand/],
    [`kafka://127.0.0.1:${closed},127.0.0.1:${closed}/x`, /no Kafka bootstrap server reachable at 127\.0\.0\.1:\d+,127\.0\.0\.1:\d+ \(ECONNREFUSED\)/],
  ] as const) {
    const b = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink kafka ${url}\n`);
    const c = await connectClient(t, b.mqttUrl, { clientId: 'p' });
    await c.publishAsync('a', 'b');
    await until(() => b.broker.capture.stats().sinks[0].failures > 0, 15_000, 'a failed write');
    t.match(readFileSync(b.logFile, 'utf8'), why);
    t.equal(b.broker.capture.stats().sinks[0].delivered, 0);
    await c.endAsync();
  }
});

t.test('malformed and hostile capture_sink kafka lines and keys are config errors that name the problem', async (t) => {
  const cases: [string, RegExp][] = [
    ['capture_sink kafka http://h:9092/t', /expected kafka:\/\/host:port/],
    ['capture_sink kafka kafka://h/t', /expected host:port, got "h"/],
    ['capture_sink kafka kafka://h:99999/t', /expected host:port/],
    ['capture_sink kafka kafka://h:9092/', /is not a Kafka topic name/],
    [`capture_sink kafka kafka://h:9092/${'t'.repeat(250)}`, /is not a Kafka topic name/],
    ['capture_sink kafka kafka://h:9092/a b', /expected 2 values/],
    ['capture_sink kafka kafka://h:9092/a\ncapture_kafka_compression brotli', /expected one of/],
    ['capture_sink kafka kafka://h:9092/a\ncapture_kafka_acks leader', /idempotence true needs capture_kafka_acks all/],
    ['capture_sink kafka kafka://h:9092/a\ncapture_kafka_username u', /SASL needs both/],
  ];
  for (const [line, err] of cases) {
    const dir = tempDir();
    const f = join(dir, 'm.conf');
    writeFileSync(f, `listener 0 127.0.0.1\n${line}\n`);
    t.throws(() => loadConfig(f), err, line.replace(/\n/g, ' / ').slice(0, 80));
  }
});
