/**
 * capture_sink kafka against a real Apache Kafka 4.1 (KRaft, one node, from Maven Central: test/helpers/kafka.ts),
 * with a SASL_SSL listener beside the plaintext one, topics not created on demand: SASL/SCRAM over TLS, a record
 * Kafka refuses, the error messages a user sees, and malformed configuration.
 */
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../app/config.js';
import { folderName } from '../../capture/sinks/index.js';
import { freePort, startTestBroker, tempDir } from '../helpers/broker.js';
import { missingSequences, newTopic, recordEvents, startKafka, stopped, type KafkaPeer } from '../helpers/kafka.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { scriptedSession, securityConf } from './session.js';

let kafka: KafkaPeer;

t.before(async () => {
  kafka = await startKafka(t, { secure: true, autoCreate: false });
});

const topic = (config?: Record<string, string>) => newTopic(kafka, 'errors', config);
const events = recordEvents;
const holes = missingSequences;

t.test(
  'SASL/SCRAM-SHA-512 over TLS (kafkas://), CA file, password from a file; a wrong password is a clear error, never logged',
  async (t) => {
    const s = kafka.secure!;
    const name = await topic();
    const dir = tempDir();
    const pw = join(dir, 'kafka.pw');
    const conf = (password: string, users: string) => {
      writeFileSync(pw, `${password}\n`);
      return `listener 0 127.0.0.1\n${users}capture_sink kafka kafkas://${s.bootstrap}/${name}\ncapture_kafka_sasl_mechanism scram-sha-512\ncapture_kafka_username ${s.user}\ncapture_kafka_password_file ${pw}\ncapture_kafka_cafile ${s.pki.caCert}\ncapture_kafka_compression gzip\n`;
    };
    const wrong = `wrong-${Date.now()}`;
    const bad = await startTestBroker(t, conf(wrong, 'allow_anonymous true\n'), { dir });
    const c1 = await connectClient(t, bad.mqttUrl, { clientId: 'refused' });
    await c1.publishAsync('a/b', 'x');
    await until(() => bad.broker.capture.stats().sinks[0].failures > 0, 15_000, 'a failed write');
    const badLog = readFileSync(bad.logFile, 'utf8');
    t.match(badLog, /Kafka refused the SASL authentication/, 'the wrong password is named');
    t.equal(badLog.indexOf(wrong), -1, 'the password is not in the log');
    await c1.endAsync();
    await bad.broker.close();

    const b = await startTestBroker(t, conf(s.password, securityConf(dir)), { dir: tempDir() });
    await scriptedSession(t, b.mqttUrl, b.port);
    const n = await stopped(b);
    const rs = await kafka.records(name);
    t.same(holes(events(rs).map((e) => e.event.sequence)), [], `all ${n} events over SASL_SSL`);
    t.equal(readFileSync(b.logFile, 'utf8').indexOf(s.password), -1, 'the password is not in the log');
  },
);

t.test(
  "a record above the topic's max.message.bytes is counted (/metrics, $SYS) and kept as pipeline_error; the rest is delivered",
  async (t) => {
    const name = await topic({ 'max.message.bytes': '4000' });
    const b = await startTestBroker(
      t,
      `listener 0 127.0.0.1\nallow_anonymous true\nsys_interval 1\ncapture_sink kafka kafka://${kafka.bootstrap}/${name}\ncapture_payload full\n`,
    );
    const sys = new Map<string, string>();
    const watcher = await connectClient(t, b.mqttUrl, { clientId: 'sys-reader' }, (c) =>
      c.on('message', (tp, payload) => sys.set(tp.split('/').pop()!, String(payload))),
    );
    const sink = `kafka:${kafka.bootstrap}/${name}`;
    await watcher.subscribeAsync(`$SYS/broker/capture_sink/${folderName(sink)}/+`);
    const c = await connectClient(t, b.mqttUrl, { clientId: 'big' });
    for (let i = 0; i < 20; i++) await c.publishAsync('big/x', i === 10 ? 'x'.repeat(10_000) : `small ${i}`, { qos: 1 });
    await c.endAsync();
    await until(() => sys.get('refused') === '1' && sys.get('queued') === '0', 20_000, 'the refused event on $SYS');
    t.match(
      Object.fromEntries(sys),
      { state: 'delivering', refused: '1', dropped: '0', queued: '0', delivered: /^[1-9]\d*$/ },
      '$SYS/broker/capture_sink/<sink>/…',
    );
    t.match(await b.broker.metrics.metrics(), `mqprobe_capture_refused_total{sink="${sink}"} 1`, 'mqprobe_capture_refused_total counts it');
    await watcher.endAsync();
    const n = await stopped(b);
    const es = events(await kafka.records(name));
    t.same(holes(es.map((e) => e.event.sequence)), [], 'no sequence missing (the big one is there as its pipeline_error record)');
    t.equal(new Set(es.map((e) => e.event.sequence)).size, n, `all ${n} sequences`);
    const errors = es.filter((e) => e.event.kind === 'pipeline_error');
    t.equal(errors.length, 1, 'one pipeline_error record');
    t.match(errors[0], { event: { action: 'publish-received', original: String }, error: { type: 'record_refused', size: Number } });
    t.ok(errors[0].error.size > 10_000);
    t.equal(
      es.filter((e) => e.event.action === 'publish-received' && e.event.kind !== 'pipeline_error').length,
      19,
      'the 19 others delivered',
    );
    t.match(readFileSync(b.logFile, 'utf8'), /"rejected":1/, 'counted');
  },
);

t.test('clear errors: a missing topic with auto-creation off, an unreachable bootstrap server', async (t) => {
  const closed = await freePort();
  for (const [url, why] of [
    [
      `kafka://${kafka.bootstrap}/no-such-topic`,
      /Kafka topic \\"no-such-topic\\" does not exist and the broker does not create topics on demand/,
    ],
    [
      `kafka://127.0.0.1:${closed},127.0.0.1:${closed}/x`,
      /no Kafka bootstrap server reachable at 127\.0\.0\.1:\d+,127\.0\.0\.1:\d+ \(ECONNREFUSED\)/,
    ],
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
