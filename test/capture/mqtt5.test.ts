/** MQTT 5 in capture events: real v5 clients (mqtt.js protocolVersion 5, mosquitto_pub -V mqttv5), each field checked, no secret in any line. */
import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt, { type IClientOptions } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { startTestBroker, tempDir, type Teardown } from '../helpers/broker.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { fixture } from '../helpers/paths.js';
import { connectPacket, rawSession, readEvents, scriptedSession, securityConf } from './session.js';

const run = promisify(execFile);
const V5: IClientOptions = { protocolVersion: 5 };
/** Secrets the session hands the broker; none may appear in a capture line, in clear or base64. */
const SECRETS = [
  'alice-secret',
  'wrong-v5-pass',
  'TOKEN-in-connect-7f3a',
  'TOKEN-in-publish-9c1d',
  'AUTH-DATA-blob-51e2',
  'CORRELATION-3b8e',
];
/** Every field capture/mqtt5.ts may write: none of them on a 3.1.1 client's events. */
const V5_FIELDS = [
  'session_expiry_interval',
  'receive_maximum',
  'maximum_packet_size',
  'topic_alias_maximum',
  'authentication_method',
  'user_property_names',
  'user_properties',
  'topic_alias',
  'content_type',
  'payload_format_indicator',
  'response_topic',
  'correlation_data_size',
  'message_expiry_interval',
  'subscription_identifier',
  'server_reason_code',
  'no_local',
  'retain_as_published',
  'retain_handling',
];

async function v5Broker(t: Teardown, extra = '') {
  const dir = tempDir();
  const out = join(dir, 'capture.ndjson');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nmax_topic_alias 10\n${securityConf(dir)}capture_sink file ${out}\ncapture_events all\n${extra}`,
    { dir },
  );
  return { b, out, url: `mqtt://127.0.0.1:${b.port}` };
}

/** The events written so far (none before the file exists). */
const eventsOf = (out: string) => (existsSync(out) ? readEvents(out) : []);

/** Waits for the connection to end (a refusal, a DISCONNECT from the broker) and returns what mqtt.js reported. */
function refusedWith(url: string, opts: IClientOptions): Promise<number | undefined> {
  const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...V5, ...opts });
  return new Promise((resolve) => {
    c.once('error', (err) => {
      c.end(true);
      resolve((err as { code?: number }).code);
    });
    c.once('close', () => resolve(undefined));
  });
}

function noSecrets(t: Test, out: string) {
  const text = readFileSync(out, 'utf8');
  for (const s of SECRETS) {
    t.notOk(text.includes(s), `"${s}" is in no capture line`);
    t.notOk(text.includes(Buffer.from(s).toString('base64')), `"${s}" is in no capture line as base64`);
  }
}

t.test('an MQTT 5 session through mqtt.js: every v5 field, field by field, and no secret', async (t) => {
  const { b, out, url } = await v5Broker(t);
  const alice = await connectClient(t, url, {
    ...V5,
    clientId: 'alice-5',
    username: 'alice',
    password: 'alice-secret',
    properties: {
      sessionExpiryInterval: 300,
      receiveMaximum: 20,
      maximumPacketSize: 100_000,
      topicAliasMaximum: 4,
      userProperties: { token: 'TOKEN-in-connect-7f3a' },
    },
  });
  const subacks: number[][] = [];
  alice.on('packetreceive', (p) => {
    if (p.cmd === 'suback') subacks.push(p.granted as number[]);
  });
  const granted = await alice.subscribeAsync('sensors/#', {
    qos: 1,
    nl: true,
    rap: true,
    rh: 1,
    properties: { subscriptionIdentifier: 7 },
  });
  t.equal(granted[0].qos, 1);
  await alice.subscribeAsync('$share/grp/sensors/x', { qos: 0 });
  // mqtt.js rejects a SUBACK failure code without it; the code on the wire is what the event must carry
  await alice.subscribeAsync('secret/#', { qos: 1 }).catch(() => undefined);
  const [shared, denied] = subacks.slice(1).map(([qos]) => [{ qos }]);
  await alice.publishAsync('sensors/t1', '{"t":21.5}', {
    qos: 1,
    properties: {
      topicAlias: 3,
      contentType: 'application/json',
      payloadFormatIndicator: true,
      responseTopic: 'sensors/reply',
      correlationData: Buffer.from('CORRELATION-3b8e'),
      messageExpiryInterval: 60,
      userProperties: { k: 'v', auth: 'TOKEN-in-publish-9c1d' },
    },
  });
  // the alias alone: the broker resolves it to sensors/t1
  await alice.publishAsync('', 'again', { qos: 1, properties: { topicAlias: 3 } });
  await alice.publishAsync('secret/x', 'nope', { qos: 1 }).catch(() => undefined);
  await alice.unsubscribeAsync(['sensors/#', 'never/subscribed']);
  await alice.endAsync(false, { reasonCode: 0x04 });
  await until(() => eventsOf(out).some((e) => e.event.action === 'client-disconnected'), 5000, 'client-disconnected');
  await b.broker.close();

  const events = readEvents(out);
  const one = (action: string, pred: (e: Record<string, any>) => boolean = () => true) => {
    const found = events.filter((e) => e.event.action === action && e.mqtt?.client_id === 'alice-5' && pred(e));
    t.equal(found.length, 1, `one ${action}`);
    return found[0] ?? {};
  };
  t.match(one('client-connected').mqtt, {
    protocol_version: 5,
    reason_code: 0,
    session_expiry_interval: 300,
    receive_maximum: 20,
    maximum_packet_size: 100_000,
    topic_alias_maximum: 4,
    user_property_names: ['token'],
  });
  t.notOk('user_properties' in one('client-connected').mqtt, 'a CONNECT user property value is never captured (capture_payload off)');

  const plain = (e: Record<string, any>) => e.mqtt.topic === 'sensors/#';
  t.same(one('subscription-granted', plain).mqtt.subscriptions, [
    {
      topic: 'sensors/#',
      qos: 1,
      granted_qos: 1,
      no_local: true,
      retain_as_published: true,
      retain_handling: 1,
      subscription_identifier: 7,
    },
  ]);
  t.match(one('subscription-granted', plain).mqtt, { reason_code: 1, subscription_identifier: 7 });
  const share = one('subscription-granted', (e) => e.mqtt.topic === '$share/grp/sensors/x').mqtt;
  t.match(share, {
    qos: 0,
    reason_code: shared[0].qos,
    shared_group: 'grp',
    subscriptions: [{ qos: 0, granted_qos: shared[0].qos, shared_group: 'grp' }],
  });
  t.equal(shared[0].qos, 0, 'the shared subscription is granted on the wire, and captured with its group');
  t.match(one('subscription-denied', (e) => e.mqtt.topic === 'secret/#').mqtt, {
    qos: 1,
    reason_code: denied[0].qos,
    subscriptions: [{ granted_qos: 0x87 }],
  });
  t.equal(denied[0].qos, 0x87, 'the ACL refusal on the wire is 0x87');

  const pubs = events.filter((e) => e.event.action === 'publish-received' && e.mqtt.client_id === 'alice-5');
  t.equal(pubs.length, 2);
  t.same(
    { ...pubs[0].mqtt, client_id: undefined },
    {
      client_id: undefined,
      topic: 'sensors/t1',
      qos: 1,
      retain: false,
      dup: false,
      message_id: pubs[0].mqtt.message_id,
      payload_size: 10,
      topic_alias: 3,
      content_type: 'application/json',
      payload_format_indicator: 1,
      response_topic: 'sensors/reply',
      correlation_data_size: 16,
      message_expiry_interval: 60,
      user_property_names: ['k', 'auth'],
    },
  );
  t.match(pubs[1].mqtt, { topic: 'sensors/t1', topic_alias: 3, payload_size: 5 });
  t.match(one('publish-denied').mqtt, { topic: 'secret/x', reason_code: 0x87 });
  t.match(one('unsubscribed', (e) => e.mqtt.topic === 'sensors/#').mqtt, { reason_code: 0 });
  t.match(one('unsubscribed', (e) => e.mqtt.topic === 'never/subscribed').mqtt, { reason_code: 0x11 });
  const bye = one('client-disconnected');
  t.match(
    bye,
    { event: { reason: 'client-disconnect', outcome: 'success' }, mqtt: { reason_code: 0x04 } },
    'DISCONNECT 0x04 is the client’s own',
  );
  t.same(
    events.filter((e) => e.event.action === 'protocol-error'),
    [],
    'the refused publish (PUBACK 0x87, the connection stays) is no protocol error',
  );
  t.notOk('server_reason_code' in bye.mqtt, 'the broker sent no DISCONNECT');
  t.match(bye.message, /disconnected: client-disconnect \(the client's DISCONNECT reason code 4\)$/);
  noSecrets(t, out);
});

t.test(
  'MQTT 5 refusals: bad password, enhanced authentication (0x8C), a receive maximum of 0 — captured with the wire reason code',
  async (t) => {
    const { b, out, url } = await v5Broker(t);
    const badPassword = await refusedWith(url, { clientId: 'bob-5', username: 'bob', password: 'wrong-v5-pass' });
    const authMethod = await refusedWith(url, {
      clientId: 'scram-5',
      username: 'alice',
      password: 'alice-secret',
      properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: Buffer.from('AUTH-DATA-blob-51e2') },
    });
    // mqtt.js will not send a receive maximum of 0: raw bytes
    await rawSession(b.port, [connectPacket('zero-5', { protocolVersion: 5, properties: { receiveMaximum: 0 } })]);
    await until(() => eventsOf(out).filter((e) => e.event.action === 'connection-refused').length >= 3, 5000, 'three refusals');
    await b.broker.close();
    const refusals = readEvents(out).filter((e) => e.event.action === 'connection-refused');
    const of = (id: string) => refusals.find((e) => e.mqtt?.client_id === id || (id === '' && !e.mqtt?.client_id));
    // the same wrong password against Mosquitto 2.0.11: the same CONNACK (0x87 "not authorized", not 0x86)
    const mosquitto = await startMosquitto(t, `password_file ${fixture('mosquitto', 'passwd')}\nallow_anonymous false\n`);
    t.equal(
      badPassword,
      await refusedWith(mosquitto.url, { clientId: 'bob-5', username: 'bob', password: 'wrong-v5-pass' }),
      'as Mosquitto answers',
    );
    t.ok(badPassword !== undefined && badPassword >= 0x80, `mqtt.js saw reason code ${badPassword}`);
    t.match(of('bob-5'), {
      event: { reason: /credentials|not-authorized|unknown-user/ },
      user: { name: 'bob' },
      mqtt: { protocol_version: 5, reason_code: badPassword },
      message: /\(CONNACK reason code 135\)$/,
    });
    t.equal(authMethod, 0x8c);
    const scram = refusals.find((e) => e.mqtt?.reason_code === 0x8c);
    t.match(scram, {
      event: { reason: 'bad-authentication-method' },
      mqtt: { protocol_version: 5, authentication_method: 'SCRAM-SHA-256' },
    });
    t.match(
      refusals.find((e) => e.mqtt?.reason_code === 0x82),
      { event: { reason: 'protocol-error' }, mqtt: { protocol_version: 5 } },
    );
    t.equal(refusals.length, 3, 'one event per refusal');
    noSecrets(t, out);
  },
);

t.test('session takeover: the old MQTT 5 connection is captured with the DISCONNECT 0x8E the broker sent it', async (t) => {
  const { b, out, url } = await v5Broker(t, 'allow_anonymous true\n');
  const first = await connectClient(t, url, { ...V5, clientId: 'twin', username: 'alice', password: 'alice-secret' });
  const kicked = new Promise<number | undefined>((r) => first.once('disconnect', (p) => r(p.reasonCode)));
  await connectClient(t, url, { ...V5, clientId: 'twin', username: 'alice', password: 'alice-secret' });
  t.equal(await kicked, 0x8e, 'the old connection got DISCONNECT 0x8E');
  await until(() => eventsOf(out).some((e) => e.event.action === 'client-disconnected'), 5000, 'client-disconnected');
  await b.broker.close();
  const gone = readEvents(out).filter((e) => e.event.action === 'client-disconnected' && e.mqtt.client_id === 'twin');
  t.match(gone[0], {
    event: { reason: 'session-taken-over' },
    mqtt: { server_reason_code: 0x8e },
    message: /session-taken-over \(the broker's DISCONNECT reason code 142\)$/,
  });
  t.notOk('reason_code' in gone[0].mqtt, 'the client sent no DISCONNECT');
});

t.test('mosquitto_pub -V mqttv5 -D publish user-property: the name is captured, the value only under capture_payload', async (t) => {
  for (const payload of ['off', 'full']) {
    const { b, out } = await v5Broker(t, `capture_payload ${payload}\n`);
    await run('mosquitto_pub', [
      ...['-h', '127.0.0.1', '-p', String(b.port), '-V', 'mqttv5', '-i', 'cli-5', '-u', 'alice', '-P', 'alice-secret'],
      ...['-t', 'sensors/cli', '-m', 'hello', '-q', '1'],
      ...['-D', 'publish', 'user-property', 'session', 'TOKEN-in-publish-9c1d', '-D', 'publish', 'content-type', 'text/plain'],
    ]);
    await until(() => eventsOf(out).some((e) => e.event.action === 'publish-received'), 5000, 'publish-received');
    await b.broker.close();
    const pub = readEvents(out).find((e) => e.event.action === 'publish-received')!;
    t.match(pub.mqtt, { client_id: 'cli-5', topic: 'sensors/cli', content_type: 'text/plain', user_property_names: ['session'] }, payload);
    if (payload === 'off') {
      t.notOk('user_properties' in pub.mqtt, 'capture_payload off: no value');
      noSecrets(t, out);
    } else t.same(pub.mqtt.user_properties, [{ name: 'session', value: 'TOKEN-in-publish-9c1d' }], 'capture_payload full: the value');
  }
});

t.test('malformed MQTT 5 packets are captured as protocol errors', async (t) => {
  const { b, out } = await v5Broker(t, 'allow_anonymous true\n');
  const connect = connectPacket('bad-5', { protocolVersion: 5 });
  const publish = (alias: number) =>
    mqttPacket.generate(
      {
        cmd: 'publish',
        topic: 'a/b',
        payload: Buffer.from('x'),
        qos: 0,
        dup: false,
        retain: false,
        properties: { topicAlias: alias },
      } as mqttPacket.IPublishPacket,
      {
        protocolVersion: 5,
      },
    );
  await rawSession(b.port, [connect, publish(0)], 3000);
  await rawSession(b.port, [connectPacket('big-5', { protocolVersion: 5 }), publish(11)], 3000);
  // a property length whose variable byte integer runs over four bytes
  await rawSession(
    b.port,
    [connectPacket('vbi-5', { protocolVersion: 5 }), Buffer.from([0x30, 0x09, 0x00, 0x03, 0x61, 0x2f, 0x62, 0xff, 0xff, 0xff, 0xff])],
    3000,
  );
  await until(() => eventsOf(out).filter((e) => e.event.action === 'protocol-error').length >= 3, 5000, 'three protocol errors');
  await b.broker.close();
  const errors = readEvents(out).filter((e) => e.event.action === 'protocol-error');
  t.match(
    errors.find((e) => e.mqtt?.client_id === 'bad-5'),
    { event: { outcome: 'failure' }, error: { message: /topic alias 0/ } },
  );
  t.match(
    errors.find((e) => e.mqtt?.client_id === 'big-5'),
    { event: { outcome: 'failure' }, error: { message: /topic alias 11/ } },
  );
  // parsed in the same read as its CONNECT, before that was handled: the event names the connection, not a client
  t.match(
    errors.find((e) => /variable byte integer/i.test(e.error.message)),
    { source: { ip: '127.0.0.1' }, event: { outcome: 'failure' } },
  );
});

t.test('a 3.1.1 session: no MQTT 5 field on any event', async (t) => {
  const { b, out, url } = await v5Broker(t);
  await scriptedSession(t, url, b.port);
  await b.broker.close();
  const events = readEvents(out);
  t.ok(events.length > 10);
  for (const e of events) {
    const keys = [...Object.keys(e.mqtt ?? {}), ...(e.mqtt?.subscriptions ?? []).flatMap((s: object) => Object.keys(s))];
    const v5 = keys.filter((k) => V5_FIELDS.includes(k));
    if (v5.length) t.fail(`${e.event.action} carries ${v5.join(', ')}`);
  }
  const connected = events.find((e) => e.event.action === 'client-connected')!;
  t.same(Object.keys(connected.mqtt), ['client_id', 'protocol_version', 'clean_session', 'keepalive', 'reason_code']);
  t.equal(connected.mqtt.protocol_version, 4);
  t.same(Object.keys(events.find((e) => e.event.action === 'subscription-denied')!.mqtt), [
    'client_id',
    'topic',
    'qos',
    'subscriptions',
    'reason_code',
  ]);
});

t.test(
  'capture_format hicap: a 3.1.1 client gets the fork’s fields exactly, an MQTT 5 client the same fields (no v5 field leaks in)',
  async (t) => {
    const { b, out, url } = await v5Broker(t, 'capture_format hicap\ncapture_payload full\n');
    for (const [id, version] of [
      ['old-4', 4],
      ['new-5', 5],
    ] as const) {
      const c = await connectClient(t, url, {
        protocolVersion: version,
        clientId: id,
        username: 'alice',
        password: 'alice-secret',
        ...(version === 5 ? { properties: { sessionExpiryInterval: 10, userProperties: { token: 'TOKEN-in-connect-7f3a' } } } : {}),
      });
      await c.subscribeAsync('sensors/#', { qos: 1 });
      await c.publishAsync('sensors/h', 'hi', {
        qos: 1,
        ...(version === 5 ? { properties: { contentType: 'text/plain', userProperties: { auth: 'TOKEN-in-publish-9c1d' } } } : {}),
      });
      await c.endAsync();
    }
    await refusedWith(url, { protocolVersion: 4, clientId: 'bad-4', username: 'bob', password: 'wrong-v5-pass' });
    await until(() => eventsOf(out).filter((l) => l.mqtt.action === 'DISCONNECT').length >= 2, 5000, 'two DISCONNECT lines');
    await b.broker.close();
    const lines = readEvents(out);
    const keysOf = (action: string, id: string) =>
      Object.keys(lines.find((l) => l.mqtt.action === action && l.mqtt.clientID === id)?.mqtt ?? {});
    const common = ['clientIP', 'port', 'clientID', 'tsUTC', 'tsLocal'];
    t.same(keysOf('CONNECT', 'old-4'), ['action', 'success', 'state', ...common], '3.1.1 CONNECT');
    t.same(keysOf('SUBSCRIBE', 'old-4'), ['action', 'topic', ...common], '3.1.1 SUBSCRIBE');
    t.same(keysOf('PUBLISH', 'old-4'), ['action', 'topic', ...common, 'payload'], '3.1.1 PUBLISH');
    t.same(keysOf('DISCONNECT', 'old-4'), ['action', ...common], '3.1.1 DISCONNECT');
    t.same(keysOf('CONNECT', 'bad-4'), ['action', 'success', 'state', 'errCode', 'reason', ...common], '3.1.1 refusal');
    t.match(lines.find((l) => l.mqtt.clientID === 'bad-4')?.mqtt, { errCode: 5, reason: 'CONNACK_REFUSED_NOT_AUTHORIZED' });
    for (const action of ['CONNECT', 'SUBSCRIBE', 'PUBLISH', 'DISCONNECT'])
      t.same(keysOf(action, 'new-5'), keysOf(action, 'old-4'), `MQTT 5 ${action}: the same fields`);
    const text = readFileSync(out, 'utf8');
    t.notOk(text.includes('TOKEN-in'), 'no user property value in HICAP');
  },
);
