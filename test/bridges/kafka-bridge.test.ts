/**
 * kafka_bridge (MQTT → Kafka) against a real Apache Kafka 4.1 (KRaft, one node, from Maven Central:
 * test/helpers/kafka.ts), started once for the file, topics not created on demand.
 */
import t, { type Test } from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, spawnCli, startTestBroker, tempDir, waitForPort } from '../helpers/broker.js';
import { configError } from '../helpers/config.js';
import { Producer, stringSerializers } from '@platformatic/kafka';
import { newTopic, startKafka, type KafkaPeer } from '../helpers/kafka.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { startRedis } from '../helpers/redis.js';

t.test('config: malformed and hostile kafka_bridge blocks are refused with file:line', async (t) => {
  const b = 'kafka_bridge a\nkafka_brokers 127.0.0.1:9092\n';
  configError(
    t,
    'kafka_brokers 127.0.0.1:9092\n',
    /:1: kafka_brokers: Kafka bridge keys belong after `kafka_bridge <name>`/,
    'a key outside a block',
  );
  configError(t, 'kafka_bridge a\nkafka_topic x/# t\n', /:1: kafka_brokers: kafka_bridge a: needs kafka_brokers/, 'no brokers');
  configError(t, b, /:1: kafka_topic: kafka_bridge a: needs at least one kafka_topic/, 'no topic line');
  configError(
    t,
    `${b}kafka_topic a/+ t-{3}\n`,
    /:3: kafka_topic: .*uses \{3\} but the filter "a\/\+" has only 2 levels/,
    'a level beyond the filter',
  );
  configError(t, `${b}kafka_topic a/# t{x}\n`, /:3: kafka_topic: .*only \{N\}/, 'braces without a level');
  configError(t, `${b}kafka_topic a/# t-{0}\n`, /:3: kafka_topic: .*count from \{1\}/, 'level 0');
  configError(t, `${b}kafka_topic a/#/b t\n`, /:3: kafka_topic: "a\/#\/b" is not a valid MQTT topic filter/, 'a bad filter');
  configError(t, `${b}kafka_topic a/# bad/topic\n`, /:3: kafka_topic: .*not a Kafka topic name/, 'a bad Kafka topic');
  configError(t, `${b}kafka_topic a/# ${'x'.repeat(300)}\n`, /:3: kafka_topic: .*not a Kafka topic name/, 'an oversized Kafka topic');
  configError(t, 'kafka_bridge a\nkafka_brokers nohost\n', /:2: kafka_brokers: expected host:port/, 'a broker without port');
  configError(t, `${b}kafka_topic a/# t\nkafka_bridge a\n`, /:4: kafka_bridge: kafka_bridge a is configured twice/, 'a name twice');
  configError(t, `kafka_bridge a;rm\n`, /:1: kafka_bridge: expected a bridge name/, 'a hostile name');
  configError(
    t,
    `${b}kafka_topic a/# t\nkafka_username u\n`,
    /:1: kafka_bridge: kafka_bridge a: SASL needs both kafka_username and kafka_password_file/,
    'SASL half given (shared check)',
  );
  configError(
    t,
    `${b}kafka_topic a/# t\nkafka_acks leader\n`,
    /kafka_idempotence true needs kafka_acks all/,
    'the shared acks/idempotence check',
  );
});

let kafka: KafkaPeer;
/** Records produced to a second subscribed topic while mqprobe is down, for the consumer lag. */
const BACKLOG = 30_000;

/** The kafka-bridge-* capture events of a capture file. */
function bridgeEvents(file: string): Record<string, any>[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"kafka-bridge-'))
    .map((l) => JSON.parse(l) as Record<string, any>);
}

/**
 * A mqprobe process (the real CLI) with its state in Redis and a kafka_bridge, for a kill -9: it is started while
 * Kafka is up, then `publishAndKill` (with Kafka down) has 1,500 QoS 1 messages acknowledged, sees on `$SYS` that the
 * bridge holds them, kills the process with SIGKILL and starts it again on the same Redis.
 */
async function killableBroker(t: Test, dir: string) {
  const redis = await startRedis(t);
  const topic = await newTopic(kafka, 'killed');
  const port = await freePort();
  const conf = join(dir, 'killed.conf');
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence_redis_url ${redis.url}\nsys_interval 1\n` +
      `kafka_bridge k\nkafka_brokers ${kafka.bootstrap}\nkafka_topic kill/# ${topic}\nlog_dest file ${join(dir, 'killed.log')}\n`,
  );
  const url = `mqtt://127.0.0.1:${port}`;
  const run = async () => {
    const p = spawnCli(t, ['-c', conf]);
    await waitForPort(port, 30_000);
    return p;
  };
  let proc = await run();
  return {
    topic,
    async publishAndKill(t: Test) {
      const sys = new Map<string, string>();
      const watcher = await connectClient(t, url, {}, (c) => c.on('message', (tp, payload) => sys.set(tp, String(payload))));
      await watcher.subscribeAsync('$SYS/broker/kafka_bridge/k/+');
      const c = await connectClient(t, url, { clientId: 'before-kill' });
      for (let i = 0; i < 1500; i += 100)
        await Promise.all(Array.from({ length: 100 }, (_, j) => c.publishAsync('kill/x', `k${i + j}`, { qos: 1 })));
      const held = () => Number(sys.get('$SYS/broker/kafka_bridge/k/in_flight') ?? 0);
      await until(
        () => /^failing: /.test(sys.get('$SYS/broker/kafka_bridge/k/state') ?? '') && held() > 0,
        20_000,
        'the bridge holding messages',
      );
      t.pass(
        `$SYS/broker/kafka_bridge/k/: failing, ${held()} in flight, ${sys.get('$SYS/broker/kafka_bridge/k/records')} records when killed`,
      );
      c.end(true);
      watcher.end(true);
      proc.child.kill('SIGKILL');
      await proc.exited;
      proc = await run();
    },
    async stop() {
      proc.child.kill('SIGTERM');
      await proc.exited;
    },
  };
}

t.test('with a real Kafka', async (t) => {
  kafka = await startKafka(t, { secure: true, autoCreate: false });

  /** The records of a topic, read again until `want` distinct values are there (or 60 s passed). */
  const eventually = async (topic: string, want: number) => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const rs = await kafka.records(topic);
      if (new Set(rs.map((r) => r.value)).size >= want || Date.now() > deadline) return rs;
      await new Promise((r) => setTimeout(r, 300));
    }
  };

  await t.test('messages map to topics by template; value = payload, key = MQTT topic or template, headers', async (t) => {
    const zeekConn = await newTopic(kafka, 'zeek');
    const plant = await newTopic(kafka, 'plant');
    // {N} templates: beats/zeek/<x> → <zeekConn-prefix>-<x>: make the Kafka topic name from level 3
    const [prefix, n] = zeekConn.split('-');
    const b = await startTestBroker(
      t,
      `listener 0 127.0.0.1\nallow_anonymous true\nkafka_bridge analytics\nkafka_brokers ${kafka.bootstrap}\n` +
        `kafka_topic beats/${prefix}/+ {2}-{3}\nkafka_topic plant/# ${plant} site-{2}\n`,
    );
    const c = await connectClient(t, b.mqttUrl, { clientId: 'sensor-7' });
    await c.publishAsync(`beats/${prefix}/${n}`, 'conn-line', { qos: 1 });
    await c.publishAsync('plant/hall/temp', Buffer.from([0, 1, 2, 255]), { qos: 0, retain: true });
    const z = await eventually(zeekConn, 1);
    t.same(
      z.map((r) => ({ key: r.key, value: r.value, headers: r.headers })),
      [
        {
          key: `beats/${prefix}/${n}`,
          value: 'conn-line',
          headers: { 'mqtt.qos': '1', 'mqtt.retain': 'false', 'mqtt.client_id': 'sensor-7' },
        },
      ],
      '{2}-{3} made the topic; key = the MQTT topic; headers qos, retain, publisher',
    );
    const p = await eventually(plant, 1);
    t.equal(p.length, 1);
    t.equal(p[0]?.key, 'site-hall', 'key template');
    t.equal(p[0]?.value, Buffer.from([0, 1, 2, 255]).toString(), 'the binary payload as it was (read back as UTF-8)');
    t.equal(p[0]?.headers['mqtt.qos'], '0');
    const metrics = await b.broker.metrics.metrics();
    t.match(metrics, /mqprobe_kafka_bridge_records_total\{bridge="analytics"\} 2/, 'records counted in /metrics');
    t.match(metrics, /mqprobe_kafka_bridge_state\{bridge="analytics",state="delivering"\} 1/, 'state in /metrics');
    const sys = await connectClient(t, b.mqttUrl);
    const state = new Promise<string>((resolve) => sys.on('message', (_topic, payload) => resolve(String(payload))));
    await sys.subscribeAsync('$SYS/broker/kafka_bridge/analytics/state');
    t.equal(await state, 'delivering', 'state retained on $SYS/broker/kafka_bridge/<name>/state');
  });

  await t.test(
    'Kafka stopped 10 s in the middle of 1,500 QoS 1 publishes (above max_inflight + max_queued): all in the topic (duplicates allowed); ' +
      'and a mqprobe process (state in Redis) killed with SIGKILL while Kafka is down: the 1,500 QoS 1 messages it acknowledged arrive after its restart',
    async (t) => {
      const topic = await newTopic(kafka, 'outage');
      const dir = tempDir();
      const file = join(dir, 'events.ndjson');
      const b = await startTestBroker(
        t,
        `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink file ${file}\n` +
          `kafka_bridge o\nkafka_brokers ${kafka.bootstrap}\nkafka_topic load/# ${topic}\n`,
        { dir },
      );
      // the process starts while the in-process broker takes its first 300
      const starting = killableBroker(t, dir);
      const c = await connectClient(t, b.mqttUrl, { clientId: 'loader' });
      const publish = async (from: number, to: number) => {
        for (let i = from; i < to; i += 100)
          await Promise.all(Array.from({ length: 100 }, (_, j) => c.publishAsync('load/x', `m${i + j}`, { qos: 1 })));
      };
      await publish(0, 300);
      const killed = await starting;
      await kafka.stop();
      const stoppedAt = Date.now();
      await publish(300, 1500);
      let m = '';
      for (
        const end = Date.now() + 15_000;
        Date.now() < end && !/state="failing"\} 1/.test(m);
        await new Promise((r) => setTimeout(r, 200))
      )
        m = await b.broker.metrics.metrics();
      t.match(m, /mqprobe_kafka_bridge_state\{bridge="o",state="failing"\} 1/, 'the bridge reports failing while Kafka is down');
      t.match(m, /mqprobe_kafka_bridge_in_flight\{bridge="o"\} [1-9]/, 'messages held, not acknowledged');

      await killed.publishAndKill(t);
      await new Promise((r) => setTimeout(r, Math.max(0, 10_000 - (Date.now() - stoppedAt))));
      await kafka.start();
      const rs = await eventually(topic, 1500);
      const values = new Set(rs.map((r) => r.value));
      const missing = Array.from({ length: 1500 }, (_, i) => `m${i}`).filter((v) => !values.has(v));
      t.same(missing, [], `all 1,500 arrived (${rs.length} records, ${rs.length - values.size} duplicates)`);
      await b.broker.close();
      const states = bridgeEvents(file).map((e) => [e.event.action, e.event.reason]);
      t.match(
        states,
        [
          ['kafka-bridge-delivering', undefined],
          ['kafka-bridge-failing', new RegExp(`no Kafka bootstrap server reachable at ${kafka.bootstrap}|no answer from Kafka`)],
          ['kafka-bridge-delivering', undefined],
        ],
        'state changes captured: delivering, failing with a reason, delivering again',
      );

      const after = await eventually(killed.topic, 1500);
      const got = new Set(after.map((r) => r.value));
      t.same(
        Array.from({ length: 1500 }, (_, i) => `k${i}`).filter((v) => !got.has(v)),
        [],
        `all 1,500 acknowledged before the SIGKILL arrived after the restart (${after.length} records, ${after.length - got.size} duplicates)`,
      );
      await killed.stop();
    },
  );

  await t.test("a message above the topic's max.message.bytes is counted and logged; the others are delivered", async (t) => {
    const topic = await newTopic(kafka, 'small', { 'max.message.bytes': '2000' });
    const b = await startTestBroker(
      t,
      `listener 0 127.0.0.1\nallow_anonymous true\nkafka_bridge s\nkafka_brokers ${kafka.bootstrap}\nkafka_topic s/# ${topic}\n`,
    );
    const c = await connectClient(t, b.mqttUrl);
    await c.publishAsync('s/1', 'before', { qos: 1 });
    await c.publishAsync('s/2', 'x'.repeat(10_000), { qos: 1 });
    await c.publishAsync('s/3', 'after', { qos: 1 });
    const rs = await eventually(topic, 2);
    // at-least-once: a record of the first, refused, batch may have been written to its partition before the retry
    t.same([...new Set(rs.map((r) => r.value))].sort(), ['after', 'before'], 'the two others arrived');
    const m = await b.broker.metrics.metrics();
    t.match(m, /mqprobe_kafka_bridge_refused_total\{bridge="s"\} 1/, 'one refused, counted');
    t.match(m, /mqprobe_kafka_bridge_in_flight\{bridge="s"\} 0/, 'nothing left held');
    t.match(readFileSync(b.logFile, 'utf8'), /Kafka refused a message for its size or content/, 'logged');
  });

  await t.test('clear errors: a missing topic (auto-creation off), an unreachable bootstrap server', async (t) => {
    const dir = tempDir();
    const file = join(dir, 'events.ndjson');
    const closed = await freePort();
    const b = await startTestBroker(
      t,
      `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink file ${file}\n` +
        `kafka_bridge missing\nkafka_brokers ${kafka.bootstrap}\nkafka_topic m/# no-such-topic\n` +
        `kafka_bridge nobody\nkafka_brokers 127.0.0.1:${closed}\nkafka_topic n/# t\n`,
      { dir },
    );
    const c = await connectClient(t, b.mqttUrl);
    await c.publishAsync('m/1', 'x', { qos: 1 });
    await c.publishAsync('n/1', 'x', { qos: 1 });
    await until(() => bridgeEvents(file).length >= 2, 20_000, 'two failing events');
    const reasons = Object.fromEntries(bridgeEvents(file).map((e) => [e.mqprobe.kafka_bridge.name, e.event.reason]));
    t.equal(
      reasons.missing,
      'Kafka topic "no-such-topic" does not exist and the broker does not create topics on demand (auto.create.topics.enable=false): create it',
    );
    t.equal(reasons.nobody, `no Kafka bootstrap server reachable at 127.0.0.1:${closed} (ECONNREFUSED)`);
    await b.broker.close();
  });

  await t.test(
    'SASL/SCRAM-SHA-512 over TLS (kafka_tls, CA file, password from a file), both directions: a wrong password is a clear failing state, ' +
      'the corrected file is read at the next connection, no password in the log',
    async (t) => {
      const s = kafka.secure!;
      const out = await newTopic(kafka, 'sasl');
      const back = await newTopic(kafka, 'sasl-back');
      const dir = tempDir();
      const pw = join(dir, 'kafka.pw');
      const wrong = `wrong-${Date.now()}`;
      writeFileSync(pw, `${wrong}\n`);
      const b = await startTestBroker(
        t,
        `listener 0 127.0.0.1\nallow_anonymous true\nkafka_bridge secure\nkafka_brokers ${s.bootstrap}\nkafka_tls true\n` +
          `kafka_cafile ${s.pki.caCert}\nkafka_sasl_mechanism scram-sha-512\nkafka_username ${s.user}\nkafka_password_file ${pw}\n` +
          `kafka_topic sasl/# ${out}\nkafka_subscribe ${back} back/{key}\n`,
        { dir },
      );
      const got: string[] = [];
      const device = await connectClient(t, b.mqttUrl, { clientId: 'sasl-device' }, (c) =>
        c.on('message', (topic, payload) => got.push(`${topic} ${payload}`)),
      );
      await device.subscribeAsync('back/#', { qos: 1 });
      await device.publishAsync('sasl/1', 'over-sasl-ssl', { qos: 1 });
      await until(
        () => /Kafka refused the SASL authentication/.test(readFileSync(b.logFile, 'utf8')),
        20_000,
        'the SASL refusal in the log',
      );
      t.match(
        await b.broker.metrics.metrics(),
        /mqprobe_kafka_bridge_state\{bridge="secure",state="failing"\} 1/,
        'failing while the password is wrong',
      );

      writeFileSync(pw, `${s.password}\n`);
      const producer = new Producer({ clientId: 'test-producer', bootstrapBrokers: [kafka.bootstrap], serializers: stringSerializers });
      t.teardown(() => producer.close());
      await producer.send({ messages: [{ topic: back, key: 'dev1', value: 'from-kafka' }] });
      const rs = await eventually(out, 1);
      t.same(
        rs.map((r) => r.value),
        ['over-sasl-ssl'],
        'the held message reached Kafka over SASL_SSL once the file held the right password',
      );
      await until(() => got.includes('back/dev1 from-kafka'), 30_000, 'the record consumed over SASL_SSL');
      t.pass('kafka_subscribe consumed over SASL_SSL');
      await b.broker.close();
      const log = readFileSync(b.logFile, 'utf8');
      t.equal(log.indexOf(wrong), -1, 'the wrong password is not in the log');
      t.equal(log.indexOf(s.password), -1, 'the password is not in the log');
    },
  );

  await t.test(
    'a graceful restart of mqprobe while Kafka takes nothing (the topic is missing): the persistent bridge session delivers after it (persistence true)',
    async (t) => {
      // Kafka down across a restart is the SIGKILL case above; here Kafka is up but refuses the topic until it exists
      const topic = `restart-${Date.now()}`;
      const dir = tempDir();
      const config =
        `listener 0 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${dir}\n` +
        `kafka_bridge r\nkafka_brokers ${kafka.bootstrap}\nkafka_topic r/# ${topic}\n`;
      const a = await startTestBroker(t, config, { dir });
      const c = await connectClient(t, a.mqttUrl);
      // more than max_inflight_messages + max_queued_messages (1,020): the bridge's session holds kafka_max_held
      for (let i = 0; i < 1500; i += 100)
        await Promise.all(Array.from({ length: 100 }, (_, j) => c.publishAsync('r/x', `r${i + j}`, { qos: 1 })));
      await until(() => /does not exist/.test(readFileSync(a.logFile, 'utf8')), 20_000, 'the bridge failing on the missing topic');
      c.end(true);
      await a.broker.close();
      await kafka.createTopic(topic, { partitions: 3 });
      await startTestBroker(t, config, { dir });
      const rs = await eventually(topic, 1500);
      const values = new Set(rs.map((r) => r.value));
      t.same(
        Array.from({ length: 1500 }, (_, i) => `r${i}`).filter((v) => !values.has(v)),
        [],
        `all 1,500 arrived after the restart (${rs.length} records)`,
      );
    },
  );

  await t.test(
    'kafka_subscribe: 20,000 records of three partitions are published into the broker in order per partition and reach a ' +
      'device session over MQTT, each at least once; a graceful restart of mqprobe in the middle loses none (duplicates counted)',
    async (t) => {
      const topic = await newTopic(kafka, 'many');
      const dir = tempDir();
      // the subscriber takes a burst of thousands at once: no max_queued_messages bound (as Mosquitto would need)
      const config =
        `listener 0 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${dir}\nmax_queued_messages 0\n` +
        `kafka_bridge many\nkafka_brokers ${kafka.bootstrap}\nkafka_subscribe ${topic} many/{key}\n`;
      const perPartition = Math.ceil(20_000 / 3);
      const total = 3 * perPartition;
      /** Per partition, the sequence numbers in the order the bridge published them, and the device received them. */
      const published: number[][] = [[], [], []];
      const got: number[][] = [[], [], []];
      const into = (lists: number[][]) => (topic: string, payload: Buffer | string) => {
        if (topic.startsWith('many/p')) lists[Number(topic.slice(-1))]!.push(Number(String(payload)));
      };
      const received = () => got.reduce((n, p) => n + new Set(p).size, 0);
      const start = async () => {
        const b = await startTestBroker(t, config, { dir });
        b.broker.broker.on('publish', (packet) => into(published)(packet.topic, packet.payload));
        const device = await connectClient(t, b.mqttUrl, { clientId: 'many-app', clean: false }, (c) => c.on('message', into(got)));
        return { b, device };
      };

      const a = await start();
      await a.device.subscribeAsync('many/+', { qos: 1 });
      const producer = new Producer({ clientId: 'test-producer', bootstrapBrokers: [kafka.bootstrap], serializers: stringSerializers });
      t.teardown(() => producer.close());
      for (let i = 0; i < perPartition; i += 2000)
        await producer.send({
          messages: [0, 1, 2].flatMap((partition) =>
            Array.from({ length: Math.min(2000, perPartition - i) }, (_, j) => ({
              topic,
              partition,
              key: `p${partition}`,
              value: String(i + j),
            })),
          ),
        });
      await until(() => received() >= total / 4, 60_000, 'a quarter of the records before the restart');
      a.device.end(true);
      await a.b.broker.close();
      const beforeRestart = got.map((p) => p.slice());
      await start();
      await until(() => received() >= total, 60_000, 'every record after the restart').catch(() => undefined);
      const inOrder = (seqs: number[]) => seqs.filter((v, i) => v !== i).slice(0, 3);
      t.ok(
        received() - beforeRestart.flat().length > 0,
        `the restart came in the middle (${beforeRestart.flat().length} of ${total} received before it)`,
      );
      for (const partition of [0, 1, 2]) {
        // a record published again after the restart repeats ones published before; the first of each is in order
        const seen = new Set<number>();
        const firsts = published[partition]!.filter((v) => !seen.has(v) && !!seen.add(v));
        t.same(inOrder(firsts), [], `partition ${partition}: the bridge published its records in offset order`);
        t.equal(firsts.length, perPartition, `partition ${partition}: published, none missing`);
        t.same(inOrder(beforeRestart[partition]!), [], `partition ${partition}: received in order before the restart`);
        t.equal(new Set(got[partition]).size, perPartition, `partition ${partition}: all ${perPartition} received, none missing`);
      }
      const duplicates = got.reduce((n, p) => n + p.length - new Set(p).size, 0);
      const republished = published.reduce((n, p) => n + p.length - new Set(p).size, 0);
      t.pass(`at-least-once across the restart: ${republished} records published twice, ${duplicates} received twice`);
    },
  );

  await t.test(
    'kafka_subscribe: records published into the broker, offsets committed, nothing lost across a restart of mqprobe; ' +
      'a backlog produced faster than it is consumed shows as consumer lag in /metrics and $SYS',
    async (t) => {
      const topic = await newTopic(kafka, 'commands');
      const bulk = await newTopic(kafka, 'bulk');
      const dir = tempDir();
      const config =
        `listener 0 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${dir}\nsys_interval 1\n` +
        `kafka_bridge back\nkafka_brokers ${kafka.bootstrap}\nkafka_subscribe ${topic} devices/{key}/cmd\nkafka_group g-${topic}\n` +
        `kafka_subscribe ${bulk} bulk/{key}\n`;
      const producer = new Producer({ clientId: 'test-producer', bootstrapBrokers: [kafka.bootstrap], serializers: stringSerializers });
      t.teardown(() => producer.close());
      const produce = (from: number, n: number, key = (i: number) => `dev${i}`) =>
        producer.send({ messages: Array.from({ length: n }, (_, j) => ({ topic, key: key(from + j), value: `cmd${from + j}` })) });

      const a = await startTestBroker(t, config, { dir });
      const got = new Set<string>();
      const app = await connectClient(t, a.mqttUrl, { clientId: 'device-app', clean: false });
      await app.subscribeAsync('devices/+/cmd', { qos: 1 });
      app.on('message', (topic, payload) => got.add(`${topic} ${payload}`));
      await produce(0, 50);
      await produce(1000, 2, () => 'a/b');
      await until(() => got.size >= 50, 30_000, 'the first 50 commands');
      t.ok(got.has('devices/dev7/cmd cmd7'), 'key in the topic, value = payload');
      app.end(true);
      await a.broker.close();

      await produce(50, 50);
      // a backlog produced while mqprobe is down: the bridge figures the lag as soon as its partitions are assigned
      for (let i = 0; i < BACKLOG; i += 5000)
        await producer.send({ messages: Array.from({ length: 5000 }, (_, j) => ({ topic: bulk, key: `b${(i + j) % 3}`, value: 'x' })) });
      const b = await startTestBroker(t, config, { dir });
      const sysLag: number[] = [];
      const sys = await connectClient(t, b.mqttUrl, {}, (c) => c.on('message', (_topic, payload) => sysLag.push(Number(String(payload)))));
      await sys.subscribeAsync('$SYS/broker/kafka_bridge/back/consumer_lag');
      got.clear();
      const again = await connectClient(t, b.mqttUrl, { clientId: 'device-app', clean: false }, (c) =>
        c.on('message', (topic, payload) => got.add(`${topic} ${payload}`)),
      );
      const expected = Array.from({ length: 50 }, (_, i) => `devices/dev${50 + i}/cmd cmd${50 + i}`);
      // records consumed but not yet committed when the first mqprobe stopped may come again: wait for the new ones
      await until(() => expected.every((m) => got.has(m)), 30_000, 'the commands produced while mqprobe was down').catch(() => undefined);
      t.same(
        expected.filter((m) => !got.has(m)),
        [],
        'every record produced while mqprobe was down reached the device session',
      );
      t.notOk(
        [...got].some((m) => m.includes('cmd1000') || m.includes('cmd1001')),
        'a key holding / is not published',
      );
      const lag = () => Number(/mqprobe_kafka_bridge_consumer_lag\{bridge="back"\} (-?\d+)/.exec(metrics)?.[1]);
      let metrics = '';
      for (const end = Date.now() + 30_000; Date.now() < end && !(lag() > 0); await new Promise((r) => setTimeout(r, 250)))
        metrics = await b.broker.metrics.metrics();
      t.ok(lag() > 0 && lag() <= BACKLOG + 100, `a real lag figure in /metrics (${lag()} of ${BACKLOG} backlog records not yet consumed)`);
      await until(() => sysLag.some((l) => l > 0), 10_000, 'a lag figure on $SYS').catch(() => undefined);
      t.ok(
        sysLag.some((l) => l > 0 && l <= BACKLOG + 100),
        `$SYS/broker/kafka_bridge/back/consumer_lag carries it (${sysLag.join(', ')})`,
      );
      again.end(true);
    },
  );
});
