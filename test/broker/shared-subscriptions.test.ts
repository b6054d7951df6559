/**
 * Shared subscriptions (`$share/<group>/<filter>`, MQTT 5 §4.8.2, served by Mosquitto to 3.1.1 clients
 * too): the same scenarios against mqprobe and the real Mosquitto 2.0.11, with real clients (mqtt.js
 * 3.1.1 and 5, mosquitto_sub) and raw packets where a reason code is read on the wire; both must
 * give the same answers.
 */
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { MqttClient } from 'mqtt';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { collect, connectClient, connectCollecting, until } from '../helpers/mqtt.js';
import { startRedis } from '../helpers/redis.js';
import { WireClient } from '../engine/wire.js';
import { readEvents } from '../capture/session.js';

const N = 10;

/** mqprobe (with a capture file) and Mosquitto, both on loopback with `conf` after their listener line. */
async function brokers(tt: Test, conf = 'allow_anonymous true\n') {
  const capture = join(tempDir(), 'capture.ndjson');
  const ours = await startTestBroker(tt, `listener 0 127.0.0.1\n${conf}capture_sink file ${capture}\n`);
  const theirs = await startMosquitto(tt, conf);
  return { ours, capture, theirs, both: [ours.mqttUrl, theirs.url] };
}

/** Resolves once the server has seen the client go: mqtt.js ends, and the broker reads the DISCONNECT first. */
async function leave(c: MqttClient): Promise<void> {
  await c.endAsync();
  // no broker event reaches another client when a member leaves: give the server a moment to process the close
  await new Promise((r) => setTimeout(r, 200));
}

/** Two groups of two and one member, a plain subscriber, N QoS 1 publishes, then a member leaves and 4 more. */
async function groupsAndMembers(tt: Test, url: string, protocolVersion: 4 | 5) {
  const connect = (clientId: string) => connectClient(tt, url, { clientId, protocolVersion });
  const pub = await connect(`pub-${protocolVersion}`);
  await pub.publishAsync('sh/t', 'old', { qos: 1, retain: true });
  const a1 = await connect('a1');
  const a2 = await connect('a2');
  const b1 = await connect('b1');
  const plain = await connect('plain');
  const got = { a1: collect(a1), a2: collect(a2), b1: collect(b1), plain: collect(plain) };
  const granted = [];
  for (const [c, topic] of [
    [a1, '$share/ga/sh/t'],
    [a2, '$share/ga/sh/t'],
    [b1, '$share/gb/sh/+'],
    [plain, 'sh/t'],
  ] as const) {
    granted.push(...(await c.subscribeAsync(topic, { qos: 1 })).map((g) => g.qos));
  }
  await until(() => got.plain.length === 1, 5000, 'the retained message to the plain subscriber');
  const live = (ms: typeof got.a1) => ms.filter((m) => !m.retain);
  for (let i = 0; i < N; i++) await pub.publishAsync('sh/t', `m${i}`, { qos: 1 });
  await until(
    () => live(got.a1).length + live(got.a2).length === N && live(got.b1).length === N && live(got.plain).length === N,
    5000,
    'all deliveries',
  );
  const split = [live(got.a1).length, live(got.a2).length];
  const groupB = live(got.b1).length;
  await leave(a2);
  for (let i = 0; i < 4; i++) await pub.publishAsync('sh/t', `after${i}`, { qos: 1 });
  await until(() => live(got.a1).length === split[0] + 4, 5000, 'the remaining member gets everything');
  return {
    granted,
    split,
    groupB,
    plain: got.plain.map((m) => `${m.payload}`).slice(0, 2),
    retainedToMembers: [...got.a1, ...got.a2, ...got.b1].filter((m) => m.retain).length,
    afterLeave: live(got.a1)
      .slice(split[0])
      .map((m) => String(m.payload)),
    a2AfterLeave: live(got.a2).length - split[1],
  };
}

const EXPECTED_GROUPS = {
  granted: [1, 1, 1, 1],
  split: [N / 2, N / 2],
  groupB: N,
  plain: ['old', 'm0'],
  retainedToMembers: 0,
  afterLeave: ['after0', 'after1', 'after2', 'after3'],
  a2AfterLeave: 0,
};

for (const version of [4, 5] as const) {
  t.test(
    `MQTT ${version === 5 ? '5' : '3.1.1'} (mqtt.js): round robin in each group, retained not sent, a leaving member's share goes to the other`,
    async (tt) => {
      const { ours, capture, theirs } = await brokers(tt);
      // Mosquitto 2.0.11 sends the retained message to every new shared subscription (MQTT 5 §4.8.2 says not to; docs/mqtt5.md)
      tt.same(await groupsAndMembers(tt, theirs.url, version), { ...EXPECTED_GROUPS, retainedToMembers: 3 }, 'Mosquitto 2.0.11');
      tt.same(
        await groupsAndMembers(tt, ours.mqttUrl, version),
        EXPECTED_GROUPS,
        'mqprobe: the same, but no retained message to the members',
      );
      await ours.broker.close();
      const subscribed = readEvents(capture)
        .filter((e) => e.event.action === 'subscription-granted')
        .map((e) => (e.mqtt as { topic?: string }).topic);
      tt.ok(
        subscribed.includes('$share/ga/sh/t') && subscribed.includes('$share/gb/sh/+'),
        'capture sees the shared subscriptions, group included',
      );
    },
  );
}

/** mosquitto_sub as one member of a group of two (with mqtt.js), 4 messages: it prints its 2 and exits. */
async function mosquittoSubMember(tt: Test, url: string, port: number): Promise<string[]> {
  const other = await connectClient(tt, url, { clientId: 'js-member' });
  const otherGot = collect(other);
  await other.subscribeAsync('$share/cli/tools/t', { qos: 1 });
  const sub = spawn('stdbuf', [
    '-oL',
    'mosquitto_sub',
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-i',
    'tools-member',
    '-t',
    '$share/cli/tools/t',
    '-q',
    '1',
    '-C',
    '2',
    '-d',
    '-W',
    '10',
  ]);
  tt.teardown(() => sub.kill());
  let out = '';
  sub.stdout.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => sub.once('exit', r));
  await until(() => /received SUBACK/i.test(out), 5000, 'mosquitto_sub subscribed');
  const pub = await connectClient(tt, url, { clientId: 'tools-pub' });
  for (let i = 0; i < 4; i++) await pub.publishAsync('tools/t', `t${i}`, { qos: 1 });
  tt.equal(await exited, 0, 'mosquitto_sub got its count and exited');
  await until(() => otherGot.length === 2, 5000, 'the other member');
  return out.split('\n').filter((l) => /^t\d$/.test(l));
}

t.test('mosquitto_sub as a group member gets every other message, as from Mosquitto', async (tt) => {
  const { ours, theirs } = await brokers(tt);
  const expected = await mosquittoSubMember(tt, theirs.url, theirs.port);
  tt.equal(expected.length, 2, 'Mosquitto: 2 of 4');
  tt.same(await mosquittoSubMember(tt, ours.mqttUrl, ours.port), expected, 'mqprobe: the same messages');
});

/** What a raw SUBSCRIBE of `topic` (with `nl`) gets: the SUBACK code, a DISCONNECT reason code, or closed. */
async function rawSubscribe(tt: Test, port: number, version: 4 | 5, topic: string, nl = false): Promise<string> {
  const { c } = await WireClient.connect(port, { clientId: `raw-${version}` }, version);
  tt.teardown(() => c.end());
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1, nl }] });
  const suback = await c.next('suback', 2000);
  if (suback) return `SUBACK 0x${suback.granted?.[0]?.toString(16)}`;
  const disconnect = await c.next('disconnect', 100);
  if (disconnect) return `DISCONNECT 0x${disconnect.reasonCode?.toString(16)}`;
  return (await c.closedWithin(2000)) ? 'closed' : 'no answer';
}

t.test('No Local on a shared subscription is a Protocol Error; malformed share names are refused (raw packets)', async (tt) => {
  const { ours, theirs } = await brokers(tt);
  // [topic, MQTT version, no-local, Mosquitto 2.0.11's answer, mqprobe's]
  const cases: [string, 4 | 5, boolean, string, string][] = [
    ['$share/g/nl/t', 5, false, 'SUBACK 0x1', 'SUBACK 0x1'],
    ['$share/g/nl/t', 4, false, 'SUBACK 0x1', 'SUBACK 0x1'],
    // [MQTT-3.8.3-4]: Mosquitto 2.0.11 grants it (docs/mqtt5.md)
    ['$share/g/nl/t', 5, true, 'SUBACK 0x1', 'DISCONNECT 0x82'],
    // no filter after the share name [MQTT-4.8.2-2]: Mosquitto 2.0.11 grants a filter that matches nothing
    ['$share/g', 5, false, 'SUBACK 0x1', 'DISCONNECT 0x82'],
    ['$share/g', 4, false, 'SUBACK 0x1', 'closed'],
    // a wildcard in the share name [MQTT-4.8.2-2]: Mosquitto calls it a malformed packet
    ['$share/g+/x', 5, false, 'DISCONNECT 0x81', 'DISCONNECT 0x82'],
    ['$share/g+/x', 4, false, 'closed', 'closed'],
  ];
  for (const [topic, version, nl, theirsSay, oursSay] of cases) {
    const what = `MQTT ${version === 5 ? '5' : '3.1.1'} ${topic}${nl ? ' no-local' : ''}`;
    tt.equal(await rawSubscribe(tt, theirs.port, version, topic, nl), theirsSay, `${what}: Mosquitto ${theirsSay}`);
    tt.equal(await rawSubscribe(tt, ours.port, version, topic, nl), oursSay, `${what}: mqprobe ${oursSay}`);
  }
  tt.ok((await WireClient.connect(ours.port, { clientId: 'after' })).connack?.reasonCode === 0, 'mqprobe still serves');
});

t.test('the ACL applies to the filter after the group; $SYS/broker/shared_subscriptions/count counts them', async (tt) => {
  const dir = tempDir('mqprobe-mosquitto-');
  const acl = join(dir, 'acl');
  writeFileSync(acl, 'topic read open/#\ntopic write #\ntopic read $SYS/#\n');
  chmodSync(acl, 0o644);
  const { both } = await brokers(tt, `allow_anonymous true\nacl_file ${acl}\nsys_interval 1\n`);
  const answers = [];
  for (const url of both) {
    const member = await connectClient(tt, url, { clientId: 'acl-member' });
    const got = collect(member);
    const granted: number[] = [];
    for (const topic of ['$share/g/open/#', '$share/g/closed/#', '$share/open/closed/#', 'closed/#']) {
      // mqtt.js rejects a SUBACK failure (0x80)
      granted.push(
        await member.subscribeAsync(topic, { qos: 1 }).then(
          (g) => g[0]!.qos,
          () => 128,
        ),
      );
    }
    const pub = await connectClient(tt, url, { clientId: 'acl-pub' });
    for (const topic of ['closed/t', 'open/t']) await pub.publishAsync(topic, topic, { qos: 1 });
    await until(() => got.some((m) => m.topic === 'open/t'), 5000, 'open/t delivered');
    const watcher = await connectClient(tt, url, { clientId: 'sys-watcher' });
    const counts = collect(watcher);
    await watcher.subscribeAsync('$SYS/broker/shared_subscriptions/count');
    await until(
      () => counts.some((m) => String(m.payload) === String(granted.slice(0, 3).filter((g) => g < 128).length)),
      5000,
      'shared_subscriptions/count',
    );
    answers.push({ granted, delivered: got.map((m) => m.topic), count: String(counts.at(-1)!.payload) });
  }
  // Mosquitto's acl_file grants every subscription and checks each delivery against the read patterns; mqprobe
  // also refuses a filter no read rule reaches (SUBACK 0x80, docs/security.md), and treats a shared
  // filter as its filter after the group: `$share/open/closed/#` as `closed/#`
  const [ours, theirs] = answers;
  tt.same(theirs, { granted: [1, 1, 1, 1], delivered: ['open/t'], count: '3' }, 'Mosquitto: all granted, only open/t delivered');
  tt.same(
    ours,
    { granted: [1, 128, 128, 128], delivered: ['open/t'], count: '1' },
    'mqprobe: the same deliveries; the filters no rule reaches refused',
  );
});

/** A persistent member (clean session false) leaves, 4 messages go out, then it comes back and 4 more. */
async function persistentMember(tt: Test, url: string) {
  const p = await connectClient(tt, url, { clientId: 'persistent-member', clean: false });
  await p.subscribeAsync('$share/gp/ps/t', { qos: 1 });
  const q = await connectClient(tt, url, { clientId: 'clean-member' });
  const qGot = collect(q);
  await q.subscribeAsync('$share/gp/ps/t', { qos: 1 });
  await leave(p);
  const pub = await connectClient(tt, url, { clientId: 'ps-pub' });
  for (let i = 0; i < 4; i++) await pub.publishAsync('ps/t', `away${i}`, { qos: 1 });
  await until(() => qGot.length >= 2, 5000, 'the online member');
  const { client: back, got: pGot } = await connectCollecting(tt, url, { clientId: 'persistent-member', clean: false });
  for (let i = 0; i < 4; i++) await pub.publishAsync('ps/t', `back${i}`, { qos: 1 });
  await until(() => pGot.length + qGot.length === 8, 5000, 'the returning member shares again, without subscribing');
  back.end(true);
  const payloads = (ms: typeof qGot) => ms.map((m) => String(m.payload)).sort();
  return { online: payloads(qGot), returning: payloads(pGot) };
}

t.test("a persistent member's session keeps its shared subscription; offline, it is skipped", async (tt) => {
  const { ours, theirs } = await brokers(tt);
  // Mosquitto 2.0.11 keeps an offline persistent member in the rotation and queues its share for its return
  tt.same(
    await persistentMember(tt, theirs.url),
    { online: ['away1', 'away3', 'back1', 'back3'], returning: ['away0', 'away2', 'back0', 'back2'] },
    'Mosquitto 2.0.11: the offline member keeps its turns (queued)',
  );
  // mqprobe skips it (MQTT 5 §4.8.2 leaves the choice to the server): nothing waits for a member that may never return
  const got = await persistentMember(tt, ours.mqttUrl);
  tt.same(
    got.online.filter((p) => p.startsWith('away')),
    ['away0', 'away1', 'away2', 'away3'],
    'mqprobe: the online member gets all while the other is away',
  );
  tt.same([got.online.length, got.returning.length], [6, 2], 'mqprobe: back, the member shares again (2 + 2) without subscribing anew');
});

t.test(
  'Redis mode: shared subscriptions granted (SUBACK 0x01), CONNACK says available; across processes: redis-shared-subscriptions.test.ts',
  async (tt) => {
    const redis = await startRedis(tt);
    const b = await startTestBroker(tt, `listener 0 127.0.0.1\nallow_anonymous true\npersistence_redis_url ${redis.url}\n`);
    tt.notMatch(readFileSync(b.logFile, 'utf8'), /shared subscriptions/i, 'no warning at start');
    tt.equal(await rawSubscribe(tt, b.port, 4, '$share/g/r/t'), 'SUBACK 0x1', 'MQTT 3.1.1: SUBACK 0x01');
    tt.equal(await rawSubscribe(tt, b.port, 5, '$share/g/r/t'), 'SUBACK 0x1', 'MQTT 5: SUBACK 0x01');
    const { connack } = await WireClient.connect(b.port, { clientId: 'redis-v5' });
    tt.equal(connack?.properties?.sharedSubscriptionAvailable, true, 'CONNACK: sharedSubscriptionAvailable true');
  },
);
