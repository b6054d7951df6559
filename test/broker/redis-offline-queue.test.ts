import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { Redis } from 'ioredis';
import mqttPacket from 'mqtt-packet';
import { freePort, spawnCli, tempDir, waitForPort, type BrokerProcess } from '../helpers/broker.js';
import { startRedis } from '../helpers/redis.js';
import { connectClient, connectCollecting, until } from '../helpers/mqtt.js';

// more than the 1001 that aedes-persistence-redis hands a resuming session by default (maxSessionDelivery 1000)
const N = 1500;
const CLIENT = 'offline-sub';

/** The real CLI on a fixed port (the same port again after a restart), its state in Redis or else in memory. */
async function brokerProcess(t: Test, redisUrl: string | undefined, port: number): Promise<BrokerProcess> {
  const conf = join(tempDir(), 'mqprobe.conf');
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\n${redisUrl ? `persistence_redis_url ${redisUrl}\n` : ''}log_dest stdout\n`,
  );
  const p = spawnCli(t, ['-c', conf]);
  await waitForPort(port);
  return p;
}

/** Reads Redis until `done` says so, for up to 15 s: the broker's writes for a PUBACK land after the delivery is seen. */
async function settle<T>(read: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
  let v = await read();
  for (let i = 0; i < 750 && !done(v); i++) {
    await new Promise((r) => setTimeout(r, 20));
    v = await read();
  }
  return v;
}

/** Message ids (the payloads' numbers) that arrived more than once, and those that never did. */
function tally(got: { payload: Buffer }[], n = N) {
  const seen = new Map<number, number>();
  for (const m of got) {
    const id = Number(m.payload.toString().slice(1));
    seen.set(id, (seen.get(id) ?? 0) + 1);
  }
  const missing: number[] = [];
  for (let i = 0; i < n; i++) if (!seen.has(i)) missing.push(i);
  return { missing, repeated: [...seen].filter(([, n]) => n > 1).map(([id]) => id) };
}

/**
 * A persistent-session subscriber goes offline, N QoS 1 messages are queued for it, the broker is
 * (optionally) restarted on the same Redis, and the subscriber comes back: it must get each message
 * exactly once (it never saw any of them before, so QoS 1 allows no repeat), leave nothing queued in
 * Redis, and get nothing more on a further reconnect.
 */
async function offlineQueue(t: Test, restart: 'none' | 'SIGTERM' | 'SIGKILL'): Promise<void> {
  const redis = await startRedis(t);
  const db = new Redis(redis.url);
  t.teardown(() => db.disconnect());
  const port = await freePort();
  const url = `mqtt://127.0.0.1:${port}`;
  let broker = await brokerProcess(t, redis.url, port);

  const sub = await connectClient(t, url, { clientId: CLIENT, clean: false });
  await sub.subscribeAsync('queue/#', { qos: 1 });
  await sub.endAsync();

  const pub = await connectClient(t, url, { clientId: 'publisher' });
  await Promise.all(Array.from({ length: N }, (_, i) => pub.publishAsync(`queue/${i % 7}`, `m${i}`, { qos: 1 })));
  await pub.endAsync();
  t.equal(await db.llen(`outgoing:${CLIENT}`), N, `all ${N} acknowledged publishes are queued in Redis for the offline subscriber`);

  if (restart !== 'none') {
    broker.child.kill(restart);
    const code = await broker.exited;
    if (restart === 'SIGTERM') t.equal(code, 0, 'graceful shutdown exits 0');
    broker = await brokerProcess(t, redis.url, port);
  }

  const { client: back, got } = await connectCollecting(t, url, { clientId: CLIENT, clean: false });
  await until(() => got.length >= N, 30_000, `${N} queued messages`).catch((err: Error) => {
    const { missing } = tally(got);
    throw new Error(
      `${err.message}: got ${got.length}, ${missing.length} missing (first: ${missing.slice(0, 10).join(', ')}); broker output:\n${broker.output().slice(-4000)}`,
    );
  });
  // every PUBACK has been processed once the queue in Redis is empty
  const left = await settle(
    () => db.llen(`outgoing:${CLIENT}`),
    (n) => n === 0,
  );
  const { missing, repeated } = tally(got);
  t.same(missing, [], 'no queued message is missing');
  t.same(repeated, [], 'no queued message arrived twice');
  t.equal(got.length, N, `exactly ${N} deliveries`);
  t.equal(left, 0, 'every acknowledged message left the Redis queue');
  // a packet's key is deleted after its entry leaves the queue (another Redis command)
  t.same(
    await settle(
      () => db.keys('packet:*'),
      (keys) => keys.length === 0,
    ),
    [],
    'no stored packet or delivery counter is left behind',
  );
  await back.endAsync();

  // a further reconnect gets nothing: a live message published now is the only thing that arrives
  const { got: again } = await connectCollecting(t, url, { clientId: CLIENT, clean: false });
  const probe = await connectClient(t, url, { clientId: 'probe' });
  await probe.publishAsync('queue/probe', 'probe', { qos: 1 });
  await until(() => again.some((m) => m.topic === 'queue/probe'), 10_000, 'the live probe message');
  t.same(
    again.filter((m) => m.topic !== 'queue/probe').map((m) => m.payload.toString()),
    [],
    'nothing queued is delivered again',
  );
  t.equal(broker.child.exitCode, null, 'the broker is still running');
  t.notMatch(broker.output(), /no such packet|unknown key|"level":(50|60)/, 'no persistence errors in the broker log');
}

t.test('queued QoS 1 messages of an offline persistent session, same broker process (Redis state)', (t) => offlineQueue(t, 'none'));
t.test('the same across a graceful broker restart (SIGTERM) on the same Redis', (t) => offlineQueue(t, 'SIGTERM'));
t.test('the same when the broker is killed (SIGKILL) after the publishes were acknowledged', (t) => offlineQueue(t, 'SIGKILL'));

/** The first packet the broker sends after a CONNECT resuming the session `clientId` (then DISCONNECT). */
async function firstPacketAfterConnect(port: number, clientId: string): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  const closed = new Promise((r) => s.once('close', r));
  const parser = mqttPacket.parser();
  const first = new Promise<string>((resolve, reject) => {
    parser.once('packet', (p) => resolve(p.cmd));
    parser.once('error', reject);
    void closed.then(() => reject(new Error('closed before any packet')));
  });
  s.on('data', (d) => parser.parse(d));
  // a will makes the broker store it (Redis round trips) between restoring the subscriptions and the CONNACK
  const will = { topic: 'wills/raw', payload: Buffer.from('gone'), qos: 0 as const, retain: false };
  s.write(
    mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: false,
      clientId,
      keepalive: 30,
      will,
    } as mqttPacket.IConnectPacket),
  );
  try {
    return await first;
  } finally {
    s.end(mqttPacket.generate({ cmd: 'disconnect' }));
    await closed;
  }
}

async function busyTopic(t: Test, state: 'redis' | 'memory'): Promise<void> {
  const redisUrl = state === 'redis' ? (await startRedis(t)).url : undefined;
  const port = await freePort();
  const url = `mqtt://127.0.0.1:${port}`;
  const broker = await brokerProcess(t, redisUrl, port);
  for (const id of ['raw-sub', CLIENT]) {
    const c = await connectClient(t, url, { clientId: id, clean: false });
    await c.subscribeAsync('queue/#', { qos: 1 });
    await c.endAsync();
  }

  // a steady stream of QoS 1 messages, one at a time, while the sessions resume again and again
  const pub = await connectClient(t, url, { clientId: 'publisher' });
  let sent = 0;
  let streaming = true;
  const stream = (async () => {
    while (streaming || sent < N) await pub.publishAsync(`queue/${sent % 7}`, `m${sent++}`, { qos: 1 });
  })();
  await until(() => sent > 20, 10_000, 'the stream to start');

  // Aedes 1.2.0 restores a resumed session's subscriptions before it writes the CONNACK; without
  // withConnackFirst a message published in between goes out first (MQTT-3.2.0-1)
  const firsts: string[] = [];
  for (let i = 0; i < 40; i++) firsts.push(await firstPacketAfterConnect(port, 'raw-sub'));
  t.same([...new Set(firsts)], ['connack'], `the first packet after CONNECT was a CONNACK in all ${firsts.length} resumptions`);

  // mqtt.js stalls for good when a QoS 1 PUBLISH comes before the CONNACK: each resumption must complete
  const got: { payload: Buffer }[] = [];
  for (let i = 0; i < 10; i++) {
    const { client, got: part } = await connectCollecting(t, url, { clientId: CLIENT, clean: false });
    await until(() => part.length > 0, 10_000, `messages after resumption ${i + 1}`);
    await client.endAsync();
    got.push(...part);
  }
  streaming = false;
  await stream;
  const { client: last, got: rest } = await connectCollecting(t, url, { clientId: CLIENT, clean: false });
  await until(() => tally([...got, ...rest], sent).missing.length === 0, 30_000, `all ${sent} messages`).catch((err: Error) => {
    throw new Error(`${err.message}: ${tally([...got, ...rest], sent).missing.length} missing`);
  });
  t.equal(tally([...got, ...rest], sent).missing.length, 0, `every one of the ${sent} streamed messages arrived across 11 resumptions`);
  await last.endAsync();
  t.equal(broker.child.exitCode, null, 'the broker is still running');
}

t.test('a persistent session resuming while its topic is busy gets its CONNACK first, then every message (Redis state)', (t) =>
  busyTopic(t, 'redis'),
);
t.test('the same with the in-memory state', (t) => busyTopic(t, 'memory'));
