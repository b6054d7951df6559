import t from 'tap';
import { MqttClient } from 'mqtt';
import { duplexPair } from '../../broker/duplex-pair.js';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqttPacket from 'mqtt-packet';
import { startTestBroker, ANONYMOUS_CONF } from '../helpers/broker.js';
import { connectClient, collect, until } from '../helpers/mqtt.js';
import { fixture } from '../helpers/paths.js';

/** Sends raw bytes and resolves with what the broker answered before closing (or after `waitMs`). */
function raw(port: number, bytes: Buffer, waitMs = 3000): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    s.on('data', (d) => chunks.push(d));
    s.on('close', () => finish(true));
    s.on('error', () => undefined);
  });
}

function connectPacket(opts: Partial<mqttPacket.IConnectPacket>): Buffer {
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId: 'x',
    keepalive: 30,
    ...opts,
  } as mqttPacket.IConnectPacket);
}

function connack(data: Buffer): number | undefined {
  // CONNACK: 0x20 0x02 <session present> <return code>
  return data[0] === 0x20 ? data[3] : undefined;
}

t.test('publish and subscribe with mqtt.js, QoS 0/1/2 and retained messages', async (t) => {
  const { mqttUrl } = await startTestBroker(t);
  const sub = await connectClient(t, mqttUrl, { clientId: 'sub' });
  const got = collect(sub);
  await sub.subscribeAsync('a/#', { qos: 2 });
  const pub = await connectClient(t, mqttUrl, { clientId: 'pub' });
  await pub.publishAsync('a/0', 'zero', { qos: 0 });
  await pub.publishAsync('a/1', 'one', { qos: 1 });
  await pub.publishAsync('a/2', 'two', { qos: 2 });
  await pub.publishAsync('r/1', 'kept', { qos: 1, retain: true });
  await until(() => got.length === 3, 5000, 'three deliveries');
  t.same(got.map((m) => [m.topic, m.payload.toString(), m.qos]).sort(), [
    ['a/0', 'zero', 0],
    ['a/1', 'one', 1],
    ['a/2', 'two', 2],
  ]);
  const late = await connectClient(t, mqttUrl, { clientId: 'late' });
  const lateGot = collect(late);
  await late.subscribeAsync('r/#', { qos: 1 });
  await until(() => lateGot.length === 1, 5000, 'retained delivery');
  t.equal(lateGot[0].payload.toString(), 'kept');
  t.ok(lateGot[0].retain, 'retained flag set on the stored message');
});

t.test('empty client id: refused with clean session false (0x02), accepted with clean session true', async (t) => {
  const { port, mqttUrl } = await startTestBroker(t);
  // mqtt-packet will not even encode this packet, so it is written by hand (MQTT 3.1.1, clean session 0, empty id)
  const emptyIdPersistent = Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x00, 0, 60, 0, 0]);
  const refused = await raw(port, emptyIdPersistent);
  t.equal(connack(refused.data), 2, 'CONNACK 0x02 identifier rejected');
  t.ok(refused.closed, 'connection closed after the refusal');
  const accepted = await raw(port, connectPacket({ clientId: '', clean: true }), 500);
  t.equal(connack(accepted.data), 0, 'accepted');
  const c = await connectClient(t, mqttUrl, { clientId: '', clean: true });
  t.ok(c.connected, 'mqtt.js with an empty id connects');
});

t.test('network clients cannot use internal $ client ids', async (t) => {
  const { port } = await startTestBroker(t);
  const r = await raw(port, connectPacket({ clientId: '$beat/zeek' }));
  t.equal(connack(r.data), 2);
});

const PASSWORDS = Object.fromEntries(
  [...readFileSync(fixture('mosquitto', 'PASSWORDS.md'), 'utf8').matchAll(/^\s+- ([\w-]+): `([^`]+)`/gm)].map((m) => [m[1], m[2]]),
);

t.test('password_file: every fixture user with their password, nobody else', async (t) => {
  t.same(Object.keys(PASSWORDS).sort(), ['alice', 'bob', 'legacy', 'sensor-01'], 'read the fixture passwords');
  const { mqttUrl } = await startTestBroker(t, `listener 0 127.0.0.1\npassword_file ${fixture('mosquitto', 'passwd')}\n`);
  for (const [user, password] of Object.entries(PASSWORDS)) {
    const c = await connectClient(t, mqttUrl, { username: user, password });
    t.ok(c.connected, `${user} authenticates`);
    c.end(true);
  }
  for (const [user, password] of [
    ['alice', 'wrong'],
    ['alice', PASSWORDS.bob],
    ['mallory', 'alice-secret'],
    ['ALICE', PASSWORDS.alice],
  ]) {
    await t.rejects(connectClient(t, mqttUrl, { username: user, password }), /Not authorized/i, `${user} with a wrong password is refused`);
  }
  await t.rejects(connectClient(t, mqttUrl, {}), /Not authorized/i, 'anonymous refused: allow_anonymous defaults to false');
});

t.test('acl_file: a denied subscription gets 0x80, a denied publish is dropped but acknowledged', async (t) => {
  const { dir } = await startTestBroker(t); // only for a temp dir
  const acl = join(dir, 'acl');
  writeFileSync(acl, 'user alice\ntopic readwrite test/#\ntopic deny test/nosubscribe\ntopic read ro/#\n');
  const { mqttUrl } = await startTestBroker(t, `listener 0 127.0.0.1\npassword_file ${fixture('mosquitto', 'passwd')}\nacl_file ${acl}\n`);
  const alice = await connectClient(t, mqttUrl, { username: 'alice', password: PASSWORDS.alice });
  // mqtt.js 5 rejects the whole subscribe call when any return code is 0x80; the SUBACK rides on the error
  const refusal = await alice.subscribeAsync({ 'test/nosubscribe': { qos: 1 }, 'test/ok': { qos: 1 } }).then(
    () => undefined,
    (err: { packet?: { granted?: number[] } }) => err,
  );
  t.same(refusal?.packet?.granted, [128, 1], 'SUBACK 0x80 for the denied filter, QoS 1 for the allowed one');
  const got = collect(alice);
  await alice.publishAsync('ro/x', 'denied write', { qos: 1 });
  t.ok(alice.connected, 'still connected after a denied QoS 1 publish (PUBACK received)');
  await alice.publishAsync('test/ok', 'allowed', { qos: 1 });
  await until(() => got.length === 1, 5000, 'allowed delivery');
  t.same(
    got.map((m) => m.topic),
    ['test/ok'],
    'only the allowed publish was delivered',
  );
});

t.test('malformed and oversized input ends only that connection', async (t) => {
  const { port, mqttUrl } = await startTestBroker(t, `${ANONYMOUS_CONF}max_packet_size 1024\nbroker_connect_timeout 1\n`);
  const bystander = await connectClient(t, mqttUrl, { clientId: 'bystander' });
  const got = collect(bystander);
  await bystander.subscribeAsync('ok');

  const garbage = await raw(port, randomBytes(1024 * 1024));
  t.ok(garbage.closed, '1 MB of random bytes: connection closed');
  const badFlags = await raw(port, Buffer.from([0x10, 0x02, 0xff, 0xff]));
  t.ok(badFlags.closed, 'malformed CONNECT: connection closed');
  const big = Buffer.concat([
    connectPacket({ clientId: 'big' }),
    mqttPacket.generate({
      cmd: 'publish',
      topic: 'ok',
      payload: Buffer.alloc(4096),
      qos: 0,
      retain: false,
      dup: false,
    } as mqttPacket.IPublishPacket),
  ]);
  const oversized = await raw(port, big);
  t.ok(oversized.closed, 'packet over max_packet_size: connection closed');
  const silent = await raw(port, Buffer.alloc(0), 5000);
  t.ok(silent.closed, 'a socket that never sends CONNECT is closed after broker_connect_timeout');

  const pub = await connectClient(t, mqttUrl, { clientId: 'after' });
  await pub.publishAsync('ok', 'still alive', { qos: 1 });
  await until(() => got.length === 1, 5000, 'delivery after the attacks');
  t.ok(bystander.connected, 'the bystander kept its connection');
});

t.test('acl_file does not apply to in-broker (internal) clients; readers still need read access', async (t) => {
  const { dir } = await startTestBroker(t); // only for a temp dir
  const acl = join(dir, 'acl');
  writeFileSync(acl, 'user alice\ntopic read beats/#\nuser bob\ntopic read other/#\n');
  const { mqttUrl, broker } = await startTestBroker(
    t,
    `listener 0 127.0.0.1\npassword_file ${fixture('mosquitto', 'passwd')}\nacl_file ${acl}\n`,
  );
  const alice = await connectClient(t, mqttUrl, { username: 'alice', password: PASSWORDS.alice });
  const bob = await connectClient(t, mqttUrl, { username: 'bob', password: PASSWORDS.bob });
  const aliceGot = collect(alice);
  const bobGot = collect(bob);
  await alice.subscribeAsync('beats/#', { qos: 1 });
  await bob.subscribeAsync('#', { qos: 1 }).catch(() => undefined);
  const internal = new MqttClient(
    () => {
      const [mine, brokers] = duplexPair();
      broker.connectInternal(brokers);
      return mine;
    },
    { clientId: '$beat/test', protocolVersion: 4, reconnectPeriod: 0 },
  );
  t.teardown(() => internal.end(true));
  await new Promise((resolve) => internal.once('connect', resolve));
  await internal.publishAsync('beats/test/record', 'from inside', { qos: 1 });
  await until(() => aliceGot.length === 1, 5000, 'delivery to the reader');
  t.equal(aliceGot[0].payload.toString(), 'from inside', 'the internal publish passed without any ACL line for $beat/test');
  t.same(bobGot, [], 'a user without read access does not see it');
});

t.test('the probe reports a will when it is published, not on a clean DISCONNECT or when the ACL denies it', async (t) => {
  const { dir } = await startTestBroker(t); // only for a temp dir
  const acl = join(dir, 'acl');
  writeFileSync(acl, 'user alice\ntopic readwrite will/#\nuser bob\ntopic read will/#\n');
  const { mqttUrl, broker } = await startTestBroker(
    t,
    `listener 0 127.0.0.1\npassword_file ${fixture('mosquitto', 'passwd')}\nacl_file ${acl}\n`,
  );
  const wills: string[] = [];
  broker.probe.on('will-published', (c, w) => wills.push(`${c.id} ${w.topic} ${w.payloadSize}`));
  const watcher = await connectClient(t, mqttUrl, { username: 'alice', password: PASSWORDS.alice, clientId: 'watcher' });
  const got = collect(watcher);
  await watcher.subscribeAsync('will/#', { qos: 1 });
  const will = (topic: string) => ({ topic, payload: Buffer.from('gone'), qos: 0 as const, retain: false });
  const dies = await connectClient(t, mqttUrl, { username: 'alice', password: PASSWORDS.alice, clientId: 'dies', will: will('will/dies') });
  const polite = await connectClient(t, mqttUrl, {
    username: 'alice',
    password: PASSWORDS.alice,
    clientId: 'polite',
    will: will('will/polite'),
  });
  const denied = await connectClient(t, mqttUrl, {
    username: 'bob',
    password: PASSWORDS.bob,
    clientId: 'denied',
    will: will('will/denied'),
  });
  (dies as unknown as { stream: net.Socket }).stream.destroy();
  await polite.endAsync();
  (denied as unknown as { stream: net.Socket }).stream.destroy();
  await until(() => got.length === 1, 5000, 'the will delivered');
  await new Promise((r) => setTimeout(r, 200));
  t.same(wills, ['dies will/dies 4'], "one will reported: the dead connection's");
  t.same(
    got.map((m) => m.topic),
    ['will/dies'],
    'and only that one delivered',
  );
});
