import t, { type Test } from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { join } from 'node:path';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { freePort, spawnCli, startTestBroker, tempDir, waitForPort } from '../helpers/broker.js';
import { startRedis, type RedisPeer } from '../helpers/redis.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { connectClient, until } from '../helpers/mqtt.js';

const RATE = 500; // QoS 1 messages per second
const CONNECT_TIMEOUT_S = 3;

/** One mqprobe process (the real CLI) with its state in Redis at `redisUrl`. */
async function brokerProcess(t: Test, redisUrl: string) {
  const port = await freePort();
  const conf = join(tempDir(), 'mqprobe.conf');
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence_redis_url ${redisUrl}\nbroker_connect_timeout ${CONNECT_TIMEOUT_S}\nlog_dest stdout\n`,
  );
  const proc = spawnCli(t, ['-c', conf]);
  await waitForPort(port);
  return { ...proc, port, mqttUrl: `mqtt://127.0.0.1:${port}` };
}

/** Milliseconds until the broker answers a fresh CONNECT (CONNACK of any return code), and the code. */
async function connectAnswer(port: number): Promise<{ ms: number; returnCode?: number }> {
  const started = Date.now();
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  const parser = mqttPacket.parser();
  const answer = new Promise<{ ms: number; returnCode?: number }>((resolve) => {
    parser.once('packet', (p) => resolve({ ms: Date.now() - started, returnCode: (p as mqttPacket.IConnackPacket).returnCode }));
    s.once('close', () => resolve({ ms: Date.now() - started }));
  });
  s.on('data', (d) => parser.parse(d));
  s.write(
    mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: true,
      clientId: `probe-${started}`,
      keepalive: 30,
    } as mqttPacket.IConnectPacket),
  );
  const timeout = new Promise<{ ms: number }>((r) => setTimeout(() => r({ ms: Date.now() - started }), (CONNECT_TIMEOUT_S + 10) * 1000));
  const res = await Promise.race([answer, timeout]);
  s.destroy();
  return res;
}

interface Fault {
  name: string;
  /** Starts the fault; returns the function that ends it. */
  begin(ctx: { redis: RedisPeer; cut(): Promise<void>; heal(): Promise<void> }): Promise<() => Promise<void>>;
  seconds: number;
  /** Whether the subscriber's process reaches Redis through the cuttable proxy. */
  viaProxy?: boolean;
}

/**
 * Two broker processes on one Redis: a persistent QoS 1 subscriber on A, a QoS 1 publisher on B at
 * RATE messages/s. The fault hits in the middle of the stream; afterwards every message the
 * publisher got a PUBACK for must reach the subscriber (repeats are allowed by QoS 1 and counted).
 */
async function underFault(t: Test, fault: Fault): Promise<void> {
  const redis = await startRedis(t, { appendonly: true });
  const proxy = await startTcpProxy(t, redis.port);
  const a = await brokerProcess(t, fault.viaProxy ? `redis://127.0.0.1:${proxy.port}/0` : redis.url);
  const b = await brokerProcess(t, redis.url);

  const received = new Map<number, number>();
  const sub = await connectClient(t, a.mqttUrl, { clientId: 'fault-sub', clean: false, reconnectPeriod: 500 });
  sub.on('message', (_topic, payload) => {
    const id = Number(payload.toString());
    received.set(id, (received.get(id) ?? 0) + 1);
  });
  await sub.subscribeAsync('fault/#', { qos: 1 });
  await new Promise((r) => setTimeout(r, 300));

  const pub = await connectClient(t, b.mqttUrl, { clientId: 'fault-pub', clean: false, reconnectPeriod: 500 });
  pub.on('error', () => undefined);
  const acked = new Set<number>();
  let sent = 0;
  const pump = setInterval(() => {
    for (let k = 0; k < RATE / 50; k++) {
      const id = sent++;
      pub.publish(`fault/${id % 5}`, String(id), { qos: 1 }, (err) => {
        if (!err) acked.add(id);
      });
    }
  }, 20);
  t.teardown(() => clearInterval(pump));

  await new Promise((r) => setTimeout(r, 2_000));
  const end = await fault.begin({ redis, cut: () => proxy.cut(), heal: () => proxy.heal() });
  const faultStarted = Date.now();
  await new Promise((r) => setTimeout(r, 500));
  // a new CONNECT while the fault lasts is answered (accepted or refused), not left hanging
  const answer = await connectAnswer(fault.viaProxy ? a.port : b.port);
  await new Promise((r) => setTimeout(r, Math.max(0, fault.seconds * 1000 - (Date.now() - faultStarted))));
  await end();
  await new Promise((r) => setTimeout(r, 2_000));
  clearInterval(pump);

  const ackedDuringFault = acked.size;
  await until(() => acked.size === sent, 60_000, `PUBACKs for all ${sent} publishes`).catch(() => undefined);
  await until(() => [...acked].every((id) => received.has(id)), 60_000, 'every acknowledged message').catch(() => undefined);
  const lost = [...acked].filter((id) => !received.has(id));
  const duplicated = [...received.values()].filter((n) => n > 1).length;
  t.comment(
    `${fault.name}: ${sent} published, ${acked.size} acknowledged (${ackedDuringFault} by the end of the fault), ${received.size} distinct received, ${lost.length} acknowledged lost, ${duplicated} duplicated; new CONNECT answered after ${answer.ms} ms (return code ${answer.returnCode ?? 'none, closed'})`,
  );
  if (lost.length) t.comment(`A:\n${a.output().slice(-3000)}\nB:\n${b.output().slice(-3000)}`);
  t.equal(lost.length, 0, `no acknowledged message lost (${acked.size} acknowledged)`);
  t.equal(acked.size, sent, 'every publish was acknowledged once Redis was reachable again');
  t.ok(
    answer.ms <= (CONNECT_TIMEOUT_S + 1) * 1000 && answer.returnCode !== undefined,
    `a CONNECT during the fault was answered within connect_timeout (${answer.ms} ms, code ${answer.returnCode})`,
  );
  t.equal(a.child.exitCode, null, 'process A still runs');
  t.equal(b.child.exitCode, null, 'process B still runs');
  t.notMatch(a.output() + b.output(), /uncaught|Unhandled/i, 'no unhandled error');
}

t.test(
  'Redis killed (SIGKILL, appendonly yes) and restarted after 10 s under 500 QoS 1 msg/s across two processes: 0 acknowledged messages lost',
  (t) =>
    underFault(t, {
      name: 'kill/restart',
      seconds: 10,
      async begin({ redis }) {
        await redis.stop();
        return () => redis.start();
      },
    }),
);

t.test('Redis frozen (SIGSTOP) for 6 s, then SIGCONT: 0 acknowledged messages lost', (t) =>
  underFault(t, {
    name: 'freeze',
    seconds: 6,
    async begin({ redis }) {
      redis.signal('SIGSTOP');
      return async () => redis.signal('SIGCONT');
    },
  }),
);

t.test(
  "network partition of the subscriber's process from Redis for 6 s (a TCP proxy whose sockets are destroyed and which refuses connections meanwhile): 0 acknowledged messages lost",
  (t) =>
    underFault(t, {
      name: 'partition',
      seconds: 6,
      viaProxy: true,
      async begin({ cut, heal }) {
        await cut();
        return heal;
      },
    }),
);

t.test('hostile entries in the Redis message stream are skipped and counted; delivery goes on', async (t) => {
  const redis = await startRedis(t);
  const b = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous true\npersistence_redis_url ${redis.url}\n`);
  const sub = await connectClient(t, b.mqttUrl, { clientId: 'hostile-sub' });
  const got: string[] = [];
  sub.on('message', (_topic, payload) => got.push(payload.toString()));
  await sub.subscribeAsync('h/#', { qos: 1 });
  const db = new Redis(redis.url);
  t.teardown(() => db.disconnect());
  const stream = 'mqprobe:messages';
  await db.xadd(stream, '*', 'i', 'x1', 'h', '{not json', 'p', 'a');
  await db.xadd(stream, '*', 'i', 'x2', 'h', '{"topic":42}', 'p', 'b');
  await db.xadd(stream, '*', 'i', 'x3', 'h', 'null');
  await db.xadd(stream, '*', 'junk', 'x'.repeat(1_000_000));
  const pub = await connectClient(t, b.mqttUrl, { clientId: 'hostile-pub' });
  await pub.publishAsync('h/ok', 'after the garbage', { qos: 1 });
  await until(() => got.length === 1, 10_000, 'the real message');
  t.same(got, ['after the garbage'], 'only the real message is delivered');
  const metrics = await b.broker.metrics.getSingleMetricAsString('mqprobe_redis_malformed_entries_total');
  t.match(metrics, /mqprobe_redis_malformed_entries_total 4/, 'the four hostile entries are counted');
  t.match(readFileSync(b.logFile, 'utf8'), /malformed entry in mqprobe:messages was skipped/, 'and logged');
});
