/**
 * Shared subscriptions across processes (docs/mqtt5.md "Across processes"): three mqprobe CLI processes
 * on one real redis-server, members on all of them (mqtt.js 3.1.1 and 5, raw packets where a client must
 * hold back its PUBACKs), publishers on any. Each message reaches exactly one member of each group; a
 * persistent member's unacknowledged share waits in its session for it on any process; a SIGKILLed
 * process's members stop being chosen within the membership TTL; a Redis restart; garbage in Redis.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Redis } from 'ioredis';
import type { MqttClient } from 'mqtt';
import { freePort, spawnCli, tempDir, waitForPort, type BrokerProcess } from '../helpers/broker.js';
import { startRedis } from '../helpers/redis.js';
import { collect, connectClient, connectCollecting, until } from '../helpers/mqtt.js';
import { WireClient } from '../engine/wire.js';
import { MEMBER_TTL_MS, SHARE_CHANGED, SHARE_PROCESSES, shareProcessKey } from '../../broker/engine/persistence/redis-shared-groups.js';
import { MESSAGE_STREAM } from '../../broker/engine/persistence/redis-stream-emitter.js';

type Got = ReturnType<typeof collect>;

const redis = await startRedis(t, { appendonly: true });
const admin = new Redis(redis.port, '127.0.0.1', { maxRetriesPerRequest: null });
t.teardown(() => admin.disconnect());

/** One mqprobe process (the real CLI) with its state in Redis. */
async function brokerProcess(): Promise<BrokerProcess & { port: number; url: string }> {
  const port = await freePort();
  const conf = join(tempDir(), 'mqprobe.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence_redis_url ${redis.url}\nlog_dest stdout\n`);
  const proc = spawnCli(t, ['-c', conf]);
  await waitForPort(port);
  return { ...proc, port, url: `mqtt://127.0.0.1:${port}` };
}

const [a, b, c] = await Promise.all([brokerProcess(), brokerProcess(), brokerProcess()]);

const payloads = (got: Got, prefix: string) => got.map((m) => String(m.payload)).filter((p) => p.startsWith(prefix));

/**
 * QoS 0 messages on `topic` from each publisher until every member has one: then every publishing
 * process knows every member (a new member is announced over Redis pub/sub, so other processes learn
 * of it a moment after its SUBACK).
 */
async function warmUp(publishers: MqttClient[], topic: string, members: (() => number)[]): Promise<void> {
  for (const pub of publishers) {
    const before = members.map((m) => m());
    const deadline = Date.now() + 15_000;
    while (members.some((m, i) => m() === before[i])) {
      if (Date.now() > deadline) throw new Error(`warm-up on ${topic}: a member got nothing`);
      await pub.publishAsync(topic, 'warm', { qos: 0 });
      await new Promise((r) => setTimeout(r, 30));
    }
  }
}

t.test('each message to exactly one member across three processes, round robin, 3.1.1 and 5 members, a second group', async (tt) => {
  const N = 30;
  const m1 = await connectClient(tt, a.url, { clientId: 'rr-m1', protocolVersion: 4 });
  const m2 = await connectClient(tt, b.url, { clientId: 'rr-m2', protocolVersion: 5 });
  const m3 = await connectClient(tt, c.url, { clientId: 'rr-m3', protocolVersion: 4 });
  const solo = await connectClient(tt, c.url, { clientId: 'rr-solo', protocolVersion: 5 });
  const plain = await connectClient(tt, b.url, { clientId: 'rr-plain' });
  const got = [m1, m2, m3].map(collect);
  const soloGot = collect(solo);
  const plainGot = collect(plain);
  for (const m of [m1, m2, m3]) await m.subscribeAsync('$share/g/rr/#', { qos: 1 });
  await solo.subscribeAsync('$share/other/rr/+', { qos: 1 });
  await plain.subscribeAsync('rr/#', { qos: 1 });
  const pubA = await connectClient(tt, a.url, { clientId: 'rr-pub-a' });
  const pubB = await connectClient(tt, b.url, { clientId: 'rr-pub-b', protocolVersion: 5 });
  await warmUp([pubA, pubB], 'rr/warm', [...got.map((g) => () => g.length), () => soloGot.length]);

  for (let i = 0; i < N; i++) await (i % 2 ? pubB : pubA).publishAsync('rr/t', `m${i}`, { qos: 1 });
  const live = () => got.map((g) => payloads(g, 'm'));
  await until(
    () => live().flat().length >= N && payloads(soloGot, 'm').length >= N && payloads(plainGot, 'm').length >= N,
    15_000,
    'all deliveries',
  );
  await new Promise((r) => setTimeout(r, 300)); // a duplicate would arrive now
  const all = live().flat();
  tt.equal(all.length, N, `${N} deliveries in the group, no more`);
  tt.equal(new Set(all).size, N, 'each message once');
  tt.same(
    live().map((g) => g.length),
    [N / 3, N / 3, N / 3],
    'round robin: 10 each on processes A, B and C',
  );
  tt.same(
    payloads(soloGot, 'm').sort(),
    [...Array(N).keys()].map((i) => `m${i}`).sort(),
    'the other group (one member) gets every message',
  );
  tt.equal(payloads(plainGot, 'm').length, N, 'a plain subscriber gets every message');
  for (const m of [m1, m2, m3, solo, plain, pubA, pubB]) await m.endAsync();
});

t.test('a persistent QoS 1 member leaves with unacknowledged messages: they wait in its session for it on another process', async (tt) => {
  const N = 10;
  // a raw 3.1.1 client that never sends PUBACK, on A
  const { c: raw } = await WireClient.connect(a.port, { clientId: 'ps-member', clean: false }, 4);
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/ps/ps/#', qos: 1 }] });
  tt.ok(await raw.next('suback', 5000), 'SUBACK');
  const other = await connectClient(tt, b.url, { clientId: 'ps-other', protocolVersion: 5 });
  const otherGot = collect(other);
  await other.subscribeAsync('$share/ps/ps/#', { qos: 1 });
  const pub = await connectClient(tt, c.url, { clientId: 'ps-pub' });
  const rawCount = () => raw.received.filter((p) => p.cmd === 'publish').length;
  await warmUp([pub], 'ps/warm', [rawCount, () => otherGot.length]);

  for (let i = 0; i < N; i++) await pub.publishAsync('ps/t', `p${i}`, { qos: 1 });
  await until(() => payloads(otherGot, 'p').length === N / 2 && rawCount() >= N / 2 + 1, 10_000, 'both members got their half');
  const held = raw.received
    .filter((p) => p.cmd === 'publish' && String(p.payload).startsWith('p'))
    .map((p) => String(p.payload))
    .sort();
  tt.equal(held.length, N / 2, 'the raw member got its half and acknowledged none');
  raw.end();
  // published while it is away (or before every process knows it left): the other member's, or queued for it
  for (let i = 0; i < 4; i++) await pub.publishAsync('ps/t', `away${i}`, { qos: 1 });

  const { got: back } = await connectCollecting(tt, c.url, { clientId: 'ps-member', clean: false, protocolVersion: 4 });
  await until(() => payloads(back, 'p').length >= N / 2, 10_000, 'the unacknowledged messages on reconnect to process C');
  tt.same(payloads(back, 'p').sort(), held, 'the same messages again, from its session, on another process');
  await until(() => payloads(back, 'away').length + payloads(otherGot, 'away').length >= 4, 10_000, 'the messages sent while it was away');
  // QoS 1: one chosen for it may come twice (queued, and live once it is back, if C reads the stream late)
  const away = [...new Set([...payloads(back, 'away'), ...payloads(otherGot, 'away')])].sort();
  tt.same(away, ['away0', 'away1', 'away2', 'away3'], 'sent while it was away: none lost');
  tt.same(
    [...payloads(otherGot, 'p'), ...held].sort(),
    [...Array(N).keys()].map((i) => `p${i}`).sort(),
    'nothing lost, nothing twice across members',
  );
});

t.test('Redis restarted: membership comes back (renewed), each message still to exactly one member', async (tt) => {
  const N = 12;
  const m1 = await connectClient(tt, a.url, { clientId: 'rs-m1', reconnectPeriod: 200 });
  const m2 = await connectClient(tt, b.url, { clientId: 'rs-m2', protocolVersion: 5, reconnectPeriod: 200 });
  const got = [m1, m2].map(collect);
  for (const m of [m1, m2]) await m.subscribeAsync('$share/rs/rs/#', { qos: 1 });
  const pub = await connectClient(tt, b.url, { clientId: 'rs-pub', reconnectPeriod: 200 });
  await warmUp(
    [pub],
    'rs/warm',
    got.map((g) => () => g.length),
  );
  await redis.stop();
  await redis.start();
  await until(() => admin.status === 'ready', 10_000, 'Redis back');
  // as if Redis had lost them too (no appendonly): each process writes its members again within a renewal
  const keys = await admin.keys('mqprobe:share:*');
  if (keys.length) await admin.del(...keys);
  const registered = async () => {
    const ids = await admin.smembers(SHARE_PROCESSES);
    const fields = await Promise.all(ids.map((id) => admin.hkeys(shareProcessKey(id))));
    return fields.flat().join(' ');
  };
  const deadline = Date.now() + 10_000;
  while (!/rs-m1/.test(await registered()) || !/rs-m2/.test(await registered())) {
    if (Date.now() > deadline) throw new Error('members not registered again after the Redis restart');
    await new Promise((r) => setTimeout(r, 100));
  }
  await warmUp(
    [pub],
    'rs/warm',
    got.map((g) => () => g.length),
  );
  for (let i = 0; i < N; i++) await pub.publishAsync('rs/t', `r${i}`, { qos: 1 });
  await until(() => got.flatMap((g) => payloads(g, 'r')).length >= N, 10_000, 'all deliveries');
  await new Promise((r) => setTimeout(r, 300));
  const all = got.flatMap((g) => payloads(g, 'r'));
  tt.same(all.sort(), [...Array(N).keys()].map((i) => `r${i}`).sort(), 'each message once');
  // exact turns again once every process has read the renewed membership (a read under way may lag by a moment)
  tt.ok(
    got.every((g) => payloads(g, 'r').length >= N / 4),
    `both members share the messages (${got.map((g) => payloads(g, 'r').length).join(' + ')})`,
  );
  for (const m of [m1, m2, pub]) await m.endAsync();
});

t.test('garbage in the membership keys and on the stream: warned and skipped, the groups keep working', async (tt) => {
  const m = await connectClient(tt, b.url, { clientId: 'gb-m' });
  const got = collect(m);
  await m.subscribeAsync('$share/gb/gb/#', { qos: 1 });
  await admin.sadd(SHARE_PROCESSES, 'evil', 'wrongtype');
  await admin.hset(
    shareProcessKey('evil'),
    'not json',
    '{}',
    JSON.stringify(['$share/gb/gb/#', 5]),
    '{}',
    JSON.stringify(['$share/gb/gb/#', 'ghost']),
    '{"qos":7}',
    JSON.stringify(['no-share', 'ghost']),
    '{"qos":1,"persistent":false}',
    'x'.repeat(100_000),
    'y'.repeat(100_000),
  );
  await admin.set(shareProcessKey('wrongtype'), 'a string');
  await admin.xadd(MESSAGE_STREAM, '*', 'i', 'evil:1', 'h', JSON.stringify({ topic: 'gb/t', qos: 0 }), 'p', 'evil', 's', '{{not json');
  await admin.xadd(MESSAGE_STREAM, '*', 'i', 'evil:2', 'h', JSON.stringify({ topic: 'gb/t', qos: 0 }), 'p', 'evil2', 's', '["array"]');
  await admin.publish(SHARE_CHANGED, 'evil');
  const logs = [a, b, c].map((p) => () => p.output());
  await until(() => logs.every((l) => /a malformed membership entry in Redis skipped/.test(l())), 10_000, 'the warning in every process');
  await until(() => logs.every((l) => /a membership key that is not a hash in Redis skipped/.test(l())), 10_000, 'the wrong type warned');
  tt.ok(/a malformed share target on a stream entry in Redis skipped/.test(b.output()), 'a bad target on the stream: warned');
  const pub = await connectClient(tt, a.url, { clientId: 'gb-pub' });
  await warmUp([pub], 'gb/warm', [() => got.length]);
  for (let i = 0; i < 5; i++) await pub.publishAsync('gb/t', `g${i}`, { qos: 1 });
  await until(() => payloads(got, 'g').length >= 5, 10_000, 'the real member gets everything');
  tt.same(payloads(got, 'g'), ['g0', 'g1', 'g2', 'g3', 'g4'], 'the real member gets everything: no malformed entry became a member');
  tt.equal(payloads(got, 'evil').length, 0, 'entries with bad targets are delivered to no member');
  for (const p of [a, b, c]) tt.equal(p.child.exitCode, null, 'every process still runs');
  await admin.del(shareProcessKey('evil'), shareProcessKey('wrongtype'));
  await admin.srem(SHARE_PROCESSES, 'evil', 'wrongtype');
  for (const x of [m, pub]) await x.endAsync();
});

t.test(
  `a process SIGKILLed: its members stop being chosen within the membership TTL (${MEMBER_TTL_MS} ms) plus one renewal`,
  async (tt) => {
    const k1 = await connectClient(tt, a.url, { clientId: 'k-m1' });
    const k2 = await connectClient(tt, b.url, { clientId: 'k-m2', protocolVersion: 5 });
    const k3 = await connectClient(tt, c.url, { clientId: 'k-m3' });
    const got = [k1, k2, k3].map(collect);
    for (const m of [k1, k2, k3]) await m.subscribeAsync('$share/k/k/#', { qos: 1 });
    const pub = await connectClient(tt, a.url, { clientId: 'k-pub' });
    await warmUp(
      [pub],
      'k/warm',
      got.map((g) => () => g.length),
    );
    k3.on('error', () => undefined);
    c.child.kill('SIGKILL');
    await c.exited;
    const killed = Date.now();
    const sent: { p: string; at: number }[] = [];
    // expiry (up to one renewal period after the kill's last renewal) plus one re-read, and room for a loaded machine
    const window = MEMBER_TTL_MS + MEMBER_TTL_MS / 3 + 3_000;
    for (let i = 0; Date.now() - killed < window + 1_500; i++) {
      await pub.publishAsync('k/t', `k${i}`, { qos: 1 });
      sent.push({ p: `k${i}`, at: Date.now() - killed });
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 500));
    const delivered = [...payloads(got[0]!, 'k'), ...payloads(got[1]!, 'k')];
    tt.equal(new Set(delivered).size, delivered.length, 'no duplicates');
    const lost = sent.filter((s) => !delivered.includes(s.p));
    tt.ok(
      lost.length > 0,
      `chosen for the dead process's member while it was still registered: ${lost.length} of ${sent.length} (QoS 1, clean session: lost)`,
    );
    tt.ok(
      lost.every((s) => s.at < window),
      `all within ${window} ms of the kill (last at ${lost.at(-1)?.at} ms)`,
    );
    const after = sent.filter((s) => s.at >= window);
    tt.ok(after.length > 10, `${after.length} sent after the window`);
    tt.ok(
      after.every((s) => delivered.includes(s.p)),
      'after it, every message reaches a living member',
    );
  },
);
