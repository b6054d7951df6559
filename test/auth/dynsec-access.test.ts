import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/broker.js';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { startDynsecPair, controlClient, CONTROL } from '../helpers/dynsec.js';
import { collect, connectClient, until } from '../helpers/mqtt.js';

/**
 * Who gets in and what they may do, on the real Mosquitto 2.0.11 with its dynamic security plugin
 * and on mqprobe, after the same commands: CONNACK codes, SUBACK codes, what an observer receives,
 * clients disconnected by a change, and `$CONTROL` refused to a client without the admin role.
 */

const SETUP = [
  {
    command: 'createRole',
    rolename: 'dev',
    acls: [
      { acltype: 'publishClientSend', topic: 'dev/#', allow: true },
      { acltype: 'publishClientSend', topic: 'dev/secret', allow: false, priority: 5 },
      { acltype: 'subscribePattern', topic: 'dev/#', allow: true },
      { acltype: 'subscribeLiteral', topic: 'dev/locked', allow: false, priority: 1 },
      { acltype: 'publishClientReceive', topic: 'dev/hidden', allow: false },
      { acltype: 'unsubscribeLiteral', topic: 'dev/#', allow: false },
    ],
  },
  {
    command: 'createRole',
    rolename: 'public',
    acls: [
      { acltype: 'subscribePattern', topic: 'public/#', allow: true },
      { acltype: 'publishClientSend', topic: 'public/in', allow: true },
    ],
  },
  { command: 'createClient', username: 'alice', password: 'alice pw', roles: [{ rolename: 'dev' }] },
  { command: 'createClient', username: 'bob', password: 'bob pw', clientid: 'bob-id', groups: [] },
  { command: 'createClient', username: 'nopw' },
  { command: 'createGroup', groupname: 'anon', roles: [{ rolename: 'public' }] },
  { command: 'addGroupClient', groupname: 'anon', username: 'bob' },
  { command: 'setAnonymousGroup', groupname: 'anon' },
];

/** CONNACK return code, or 0 when accepted. */
async function connack(url: string, opts: IClientOptions): Promise<number> {
  const c = mqtt.connect(url, { reconnectPeriod: 0, protocolVersion: 4, ...opts });
  try {
    return await new Promise<number>((resolve, reject) => {
      c.once('connect', () => resolve(0));
      c.once('error', (err) => ((err as { code?: number }).code ? resolve((err as { code: number }).code) : reject(err)));
    });
  } finally {
    c.end(true);
  }
}

function closed(c: MqttClient): Promise<void> {
  return new Promise((resolve) => c.once('close', () => resolve()));
}

async function scenario(t: Test, url: string) {
  const admin = await controlClient(t, url);
  const setup = await admin.send(SETUP);
  const seen: Record<string, unknown> = { setupErrors: setup.filter((r) => r.error) };

  seen.connacks = {
    alice: await connack(url, { username: 'alice', password: 'alice pw' }),
    aliceWrongPassword: await connack(url, { username: 'alice', password: 'nope' }),
    bobWrongId: await connack(url, { username: 'bob', password: 'bob pw', clientId: 'other' }),
    bobRightId: await connack(url, { username: 'bob', password: 'bob pw', clientId: 'bob-id' }),
    unknown: await connack(url, { username: 'carol', password: 'x' }),
    noPasswordGiven: await connack(url, { username: 'alice' }),
    noPasswordStored: await connack(url, { username: 'nopw', password: 'x' }),
    anonymous: await connack(url, {}),
  };

  // admin's role reads and subscribes to everything: it observes what reaches the broker
  const observer = admin.client;
  await observer.subscribeAsync(['dev/#', 'public/#']);
  const observed = collect(observer);
  const alice = await connectClient(t, url, { username: 'alice', password: 'alice pw', clientId: 'alice-1', protocolVersion: 4 });
  const anon = await connectClient(t, url, { clientId: 'anon-1', protocolVersion: 4 });
  const sub = async (c: MqttClient, f: string) =>
    c.subscribeAsync(f).then(
      (g) => g[0].qos,
      (err: { packet?: { granted: number[] } }) => err.packet?.granted[0] ?? -1,
    );
  seen.subacks = {
    aliceDev: await sub(alice, 'dev/#'),
    aliceDevLocked: await sub(alice, 'dev/locked'),
    aliceDevPlus: await sub(alice, 'dev/+/x'),
    aliceOther: await sub(alice, 'other/#'),
    aliceControl: await sub(alice, '$CONTROL/dynamic-security/#'),
    anonPublic: await sub(anon, 'public/#'),
    anonDev: await sub(anon, 'dev/#'),
  };
  const aliceGot = collect(alice);
  for (const topic of ['dev/a', 'dev/secret', 'dev/hidden', 'other/x', 'public/in'])
    await alice.publishAsync(topic, 'from alice', { qos: 1 });
  for (const topic of ['public/in', 'public/other', 'dev/a']) await anon.publishAsync(topic, 'from anon', { qos: 1 });
  // a client without the admin role sends a command: no answer, nothing changes
  await alice.publishAsync(CONTROL, JSON.stringify({ commands: [{ command: 'deleteClient', username: 'bob' }] }), { qos: 1 });
  await observer.publishAsync('dev/end', 'end', { qos: 1 }); // not allowed for admin: denied, so use a marker alice may send
  await alice.publishAsync('dev/marker', 'marker', { qos: 1 });
  await until(() => observed.some((m) => m.topic === 'dev/marker') && aliceGot.some((m) => m.topic === 'dev/marker'), 5000, 'marker');
  seen.observed = observed.map((m) => `${m.topic} ${m.payload}`).sort();
  seen.aliceGot = aliceGot.map((m) => `${m.topic} ${m.payload}`).sort();
  // unsubscribeLiteral dev/# deny: the subscription stays; other/# was never granted, unsubscribing it is allowed
  await alice.unsubscribeAsync(['dev/#', 'dev/+/x']);
  await alice.publishAsync('dev/after-unsub', 'still subscribed?', { qos: 1 });
  await alice.publishAsync('dev/x/x', 'dev/+/x gone?', { qos: 1 });
  await alice.publishAsync('dev/marker2', 'marker', { qos: 1 });
  // dev/# stays on both brokers (the denied unsubscribe), so alice's copy of the marker arrives
  await until(() => observed.some((m) => m.topic === 'dev/marker2') && aliceGot.some((m) => m.topic === 'dev/marker2'), 5000, 'marker 2');
  seen.aliceAfterUnsubscribe = aliceGot.map((m) => m.topic).sort();
  const after = await admin.send([{ command: 'getClient', username: 'bob' }]);
  seen.bobStillThere = after[0].command === 'getClient' && !after[0].error;

  // a change to alice's rights disconnects her; a disabled client cannot come back
  const gone = closed(alice);
  seen.disable = await admin.send([{ command: 'disableClient', username: 'alice' }]);
  await gone;
  seen.disabledConnack = await connack(url, { username: 'alice', password: 'alice pw' });
  await admin.send([{ command: 'enableClient', username: 'alice' }]);
  seen.enabledConnack = await connack(url, { username: 'alice', password: 'alice pw' });
  // changing the anonymous group's roles disconnects anonymous clients
  const anonGone = closed(anon);
  await admin.send([{ command: 'removeGroupRole', groupname: 'anon', rolename: 'public' }]);
  await anonGone;
  // a new password applies at once
  await admin.send([{ command: 'setClientPassword', username: 'alice', password: 'alice new pw' }]);
  seen.oldPassword = await connack(url, { username: 'alice', password: 'alice pw' });
  seen.newPassword = await connack(url, { username: 'alice', password: 'alice new pw' });
  return seen;
}

t.test('logins, ACLs, kicks and $CONTROL rights agree with the real plugin', async (t) => {
  const captureFile = join(tempDir(), 'capture.json');
  const pair = await startDynsecPair(t, 'allow_anonymous true\n', `capture_sink file ${captureFile}\ncapture_payload full\n`);
  const want = await scenario(t, pair.mosquitto.url);
  const got = await scenario(t, pair.mqprobe.mqttUrl);
  t.strictSame(got, want, 'same observations');
  t.equal((want.connacks as Record<string, number>).alice, 0, 'the reference accepted alice');
  t.equal((want.connacks as Record<string, number>).aliceWrongPassword, 5, 'and refused a wrong password');
  t.ok((want.observed as string[]).includes('dev/a from alice'), 'alice published to dev/a');
  const kicked = 'Client alice-1 been disconnected by administrative action.';
  t.ok(pair.mosquitto.output().includes(kicked), `Mosquitto logs "${kicked}"`);
  t.ok(readFileSync(pair.mqprobe.logFile, 'utf8').includes(kicked), 'so does mqprobe');
  await pair.mqprobe.broker.close(); // flushes capture
  const log = readFileSync(pair.mqprobe.logFile, 'utf8');
  const captured = readFileSync(captureFile, 'utf8');
  t.match(captured, /"topic":"dev\/a"/, 'publishes were captured, with payloads');
  for (const secret of ['alice pw', 'alice new pw', 'bob pw']) {
    t.notOk(log.includes(secret), `no "${secret}" in mqprobe's log`);
    t.notOk(captured.includes(secret) || captured.includes(Buffer.from(secret).toString('base64')), `nor in its capture`);
  }
  t.match(log, /dynsec: [^|]+\/admin \| setClientPassword/, 'commands are logged, by command name');
});
