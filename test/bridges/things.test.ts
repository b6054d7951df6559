import t, { type Test } from 'tap';
import { chmodSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { MqttClient } from 'mqtt';
import { startTestBroker, tempDir, type TestBroker } from '../helpers/broker.js';
import { collect, connectClient, until } from '../helpers/mqtt.js';
import { startMosquitto, type MosquittoPeer } from '../helpers/mosquitto.js';
import { fixture } from '../helpers/paths.js';
import { loadConfig } from '../../app/config.js';
import { openSse } from './sse-client.js';

type Msg = { topic: string; payload: Buffer };
const TOKEN = 'A1_TEST_TOKEN_3f9c2e';

/** mqprobe with a things beat pointed at the Mosquitto peer, and a subscriber on its output. */
async function beatBroker(
  t: Test,
  peer: MosquittoPeer,
  lines: string[] = [],
  opts: { token?: string } = {},
): Promise<{ broker: TestBroker; out: Msg[]; sub: MqttClient }> {
  const dir = tempDir();
  writeFileSync(join(dir, 'token'), `${opts.token ?? TOKEN}\n`);
  const conf = [
    'listener 0 127.0.0.1',
    'allow_anonymous true',
    'http_listener 0 127.0.0.1',
    `persistence_location ${dir}`,
    'beat things',
    `things_url ${peer.url}`,
    `things_token_file ${join(dir, 'token')}`,
    ...lines,
    '',
  ].join('\n');
  const broker = await startTestBroker(t, conf, { dir });
  const sub = await connectClient(t, broker.mqttUrl);
  const out = collect(sub);
  await sub.subscribeAsync('beats/things/#', { qos: 1 });
  return { broker, out, sub };
}

/** A Mosquitto password file with one user, written by the real mosquitto_passwd, readable by user mosquitto. */
function mosquittoPasswd(dir: string, user: string, password: string): string {
  const file = join(dir, 'passwd');
  writeFileSync(file, '');
  execFileSync('mosquitto_passwd', ['-b', file, user, password]);
  chmodSync(file, 0o644);
  return file;
}

/** Mosquitto's -v log shows the beat's SUBSCRIBE once it is connected and listening. */
async function beatSubscribed(peer: MosquittoPeer, topic = 'v1/gateway/claim', times = 1): Promise<void> {
  const line = `: \t${topic} (QoS`;
  const count = () =>
    peer
      .output()
      .split('\n')
      .filter((l) => l.includes(line)).length;
  await until(() => count() >= times, 20_000, `the beat subscribing to ${topic} on Mosquitto`);
}

/** The sentinel: a message after all others; once its record is out, everything before it is too. */
async function flushed(upstream: MqttClient, out: Msg[], name: string): Promise<void> {
  await upstream.publishAsync('v1/gateway/connect', JSON.stringify({ device: name }), { qos: 1 });
  await until(() => out.some((m) => m.topic === `beats/things/${name}/connect`), 10_000, `sentinel ${name}`);
}

/** The `msg` of every line the broker logged (pino JSON lines). */
const logged = (broker: TestBroker): string[] =>
  readFileSync(broker.logFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { msg: string }).msg);

const json = (m: Msg) => JSON.parse(m.payload.toString()) as Record<string, any>;
const recordsOf = (out: Msg[]) => out.filter((m) => !m.topic.includes('/Sentinel')).map((m) => ({ topic: m.topic, ...json(m) }));

/** Every fixture as (topic, payload): the file name names the topic; `$request_id` templates get ids. */
function fixturePayloads(ids: Record<string, number>): { file: string; topic: string; payload: string }[] {
  const dir = fixture('thingsboard');
  return readdirSync(dir)
    .sort()
    .map((file) => {
      const topic = file.replace(/\..*$/, '').replace(/-/g, '/');
      let payload = readFileSync(join(dir, file), 'utf8');
      if (file.includes('template')) payload = payload.replace(/\$request_id/g, String(ids[file]));
      return { file, topic, payload };
    });
}

t.test('config errors name file, line and key', async (t) => {
  const dir = tempDir();
  const cases: [string, RegExp][] = [
    ['beat things\nthings_token_file /x\n', /things_url: beat things needs things_url/],
    ['beat things\nthings_url http://x\n', /:3: things_url: expected an mqtt:\/\/ or mqtts:\/\/ URL/],
    ['beat things\nthings_url mqtt://x\n', /things_token_file: beat things needs credentials/],
    ['beat things\nthings_url mqtt://x\nthings_token_file /t\nthings_username u\n', /give either things_token_file or things_username/],
    [
      'beat things\nthings_url mqtt://x\nthings_token_file /t\nthings_mode device\n',
      /things_device: things_mode device needs things_device/,
    ],
    ['beat things\nthings_url mqtt://x\nthings_token_file /t\nthings_mode hub\n', /:5: things_mode: expected one of gateway\|device/],
    ['beat things\nthings_url mqtt://u:p@x\nthings_token_file /t\n', /credentials do not belong in the URL/],
  ];
  for (const [text, want] of cases) {
    const file = join(dir, 'm.conf');
    writeFileSync(file, `listener 0 127.0.0.1\n${text}`);
    t.throws(() => loadConfig(file), want, text.replace(/\n/g, ' | '));
  }
});

t.test('every fixture payload arrives mapped exactly once (ThingsBoard gateway API replayed through Mosquitto)', async (t) => {
  const peer = await startMosquitto(t);
  const { broker, out } = await beatBroker(t, peer);
  await beatSubscribed(peer);
  const sse = await openSse(t, broker.httpPort!, 'beats/things/#');
  const upstream = await connectClient(t, peer.url, { clientId: 'thingsboard-stand-in' });
  const ids = { 'v1-gateway-rpc.request.template.txt': 7, 'v1-gateway-rpc.response.template.txt': 8 };
  for (const f of fixturePayloads(ids)) await upstream.publishAsync(f.topic, f.payload, { qos: 1 });
  await flushed(upstream, out, 'Sentinel');

  const got = recordsOf(out);
  const want = [
    {
      topic: 'beats/things/Device A/attributes',
      device: 'Device A',
      source: 'publish',
      attributes: { attribute1: 'value1', attribute2: 42 },
    },
    {
      topic: 'beats/things/Device B/attributes',
      device: 'Device B',
      source: 'publish',
      attributes: { attribute1: 'value1', attribute2: 42 },
    },
    {
      topic: 'beats/things/Device A/attributes',
      device: 'Device A',
      source: 'update',
      attributes: { attribute1: 'value1', attribute2: 42 },
    },
    { topic: 'beats/things/Device A/claim', device: 'Device A', durationMs: 60000, secretKey: '[redacted]' },
    { topic: 'beats/things/Device B/claim', device: 'Device B', durationMs: 60000, secretKey: '[redacted]' },
    { topic: 'beats/things/Device A/connect', device: 'Device A', type: 'Sensor A' },
    { topic: 'beats/things/Device A/connect', device: 'Device A' },
    { topic: 'beats/things/Device A/disconnect', device: 'Device A' },
    { topic: 'beats/things/Device A/rpc', device: 'Device A', direction: 'request', id: 7, method: 'toggle_gpio', params: { pin: 1 } },
    { topic: 'beats/things/Device A/rpc', device: 'Device A', direction: 'response', id: 8, result: { success: true } },
    { topic: 'beats/things/Device A/telemetry', device: 'Device A', ts: 1483228800000, values: { temperature: 42, humidity: 80 } },
    { topic: 'beats/things/Device A/telemetry', device: 'Device A', ts: 1483228801000, values: { temperature: 43, humidity: 82 } },
    { topic: 'beats/things/Device B/telemetry', device: 'Device B', ts: 1483228800000, values: { temperature: 42, humidity: 80 } },
  ];
  t.same(got, want, 'each fixture entry once, in order, mapped');
  t.notOk(
    out.some((m) => m.payload.toString().includes('value_A')),
    'the claiming secret is not republished',
  );

  await until(() => sse.events.filter((e) => !e.event.includes('/Sentinel')).length >= want.length, 10_000, 'SSE events');
  t.same(
    sse.events.filter((e) => !e.event.includes('/Sentinel')).map((e) => ({ topic: e.event, ...JSON.parse(e.data) })),
    want,
    'the same records on /sse',
  );
});

t.test('NGSI-LD and NGSI v2 entities with urn:ngsi-ld:Device ids (ThingsBoard gateway API replayed through Mosquitto)', async (t) => {
  const peer = await startMosquitto(t);
  const ld = await beatBroker(t, peer, ['beat_format ngsi-ld']);
  await beatSubscribed(peer);
  const upstream = await connectClient(t, peer.url);
  const telemetry = readFileSync(fixture('thingsboard', 'v1-gateway-telemetry.json'));
  await upstream.publishAsync('v1/gateway/telemetry', telemetry, { qos: 1 });
  await until(() => ld.out.length >= 3, 10_000, 'telemetry entities');
  const first = json(ld.out[0]);
  t.equal(ld.out[0].topic, 'beats/things/Device A/telemetry');
  t.same(first, {
    id: 'urn:ngsi-ld:Device:Device_A',
    type: 'Device',
    temperature: { type: 'Property', value: 42, observedAt: '2017-01-01T00:00:00.000Z' },
    humidity: { type: 'Property', value: 80, observedAt: '2017-01-01T00:00:00.000Z' },
    '@context': 'https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld',
  });
  t.equal(json(ld.out[2]).id, 'urn:ngsi-ld:Device:Device_B');
  await ld.broker.broker.close();

  const v2 = await beatBroker(t, peer, ['beat_format ngsi']);
  await beatSubscribed(peer, 'v1/gateway/claim', 2);
  await upstream.publishAsync(
    'v1/gateway/attributes',
    readFileSync(fixture('thingsboard', 'v1-gateway-attributes.update-from-server.json')),
    { qos: 1 },
  );
  await until(() => v2.out.length >= 1, 10_000, 'attribute entity');
  t.same(json(v2.out[0]), {
    id: 'urn:ngsi-ld:Device:Device_A',
    type: 'Device',
    attribute1: { type: 'String', value: 'value1', metadata: {} },
    attribute2: { type: 'Int', value: 42, metadata: {} },
  });
});

t.test('RPC replies and attribute requests from mqprobe clients reach ThingsBoard (gateway API replayed through Mosquitto)', async (t) => {
  const peer = await startMosquitto(t);
  const { broker, out } = await beatBroker(t, peer);
  await beatSubscribed(peer);
  const tb = await connectClient(t, peer.url, { clientId: 'thingsboard-stand-in' });
  const toTb = collect(tb);
  await tb.subscribeAsync(['v1/gateway/rpc', 'v1/gateway/attributes/request'], { qos: 1 });
  const app = await connectClient(t, broker.mqttUrl, { clientId: 'operator-app' });

  const request = readFileSync(fixture('thingsboard', 'v1-gateway-rpc.request.template.txt'), 'utf8').replace('$request_id', '41');
  await tb.publishAsync('v1/gateway/rpc', request, { qos: 1 });
  await until(() => out.some((m) => m.topic === 'beats/things/Device A/rpc'), 10_000, 'RPC request record');
  toTb.length = 0; // ThingsBoard's own request, echoed by Mosquitto to its publisher

  await app.publishAsync('beats/things/rpc/Device A/41', JSON.stringify({ success: true, pin: 1 }), { qos: 1 });
  await until(() => toTb.some((m) => m.topic === 'v1/gateway/rpc'), 10_000, 'RPC reply at ThingsBoard');
  t.same(
    JSON.parse(toTb[0].payload.toString()),
    { device: 'Device A', id: 41, data: { success: true, pin: 1 } },
    'the reply in the gateway API shape',
  );

  // a second reply to the same request, and replies to requests never made, go nowhere
  await app.publishAsync('beats/things/rpc/Device A/41', '{"again":true}', { qos: 1 });
  await app.publishAsync('beats/things/rpc/Device Z/1', '{"forged":true}', { qos: 1 });
  await app.publishAsync('beats/things/rpc/Device A/not-a-number', '{}', { qos: 1 });

  // attribute request: one key asked, the lone "value" of the answer is named by the request
  await app.publishAsync('beats/things/rpc/Device A/attributes', JSON.stringify({ shared: ['firmware'] }), { qos: 1 });
  await until(() => toTb.some((m) => m.topic === 'v1/gateway/attributes/request'), 10_000, 'attribute request at ThingsBoard');
  const asked = JSON.parse(toTb.find((m) => m.topic === 'v1/gateway/attributes/request')!.payload.toString());
  t.match(asked, { device: 'Device A', client: false, key: 'firmware' });
  await tb.publishAsync('v1/gateway/attributes/response', JSON.stringify({ id: asked.id, device: 'Device A', value: '1.2.3' }), { qos: 1 });
  await until(() => out.some((m) => m.topic === 'beats/things/Device A/attributes'), 10_000, 'attribute answer');
  t.same(json(out.find((m) => m.topic === 'beats/things/Device A/attributes')!), {
    device: 'Device A',
    source: 'response',
    attributes: { firmware: '1.2.3' },
  });

  await flushed(tb, out, 'Sentinel');
  t.equal(toTb.filter((m) => m.topic === 'v1/gateway/rpc').length, 1, 'exactly one reply reached ThingsBoard');
  t.equal(out.filter((m) => m.topic === 'beats/things/Device A/rpc').length, 1, 'the beat did not turn its own echoed reply into a record');
  const log = logged(broker).join('\n');
  t.match(log, /command on beats\/things\/rpc\/Device A\/41 refused: no pending RPC request 41 for device level "Device A"/);
  t.match(log, /no pending RPC request 1 for device level "Device Z"/);
  t.match(log, /"not-a-number" is neither a request id nor "attributes"/);
});

t.test('device mode: RPC requests, replies and attribute answers on v1/devices/me (device API replayed through Mosquitto)', async (t) => {
  const peer = await startMosquitto(t);
  const { broker, out } = await beatBroker(t, peer, ['things_mode device', 'things_device Boiler 7']);
  await beatSubscribed(peer, 'v1/devices/me/telemetry');
  const tb = await connectClient(t, peer.url);
  const toTb = collect(tb);
  await tb.subscribeAsync(['v1/devices/me/rpc/response/+', 'v1/devices/me/attributes/request/+'], { qos: 1 });
  const app = await connectClient(t, broker.mqttUrl);

  await tb.publishAsync('v1/devices/me/rpc/request/5', JSON.stringify({ method: 'setValve', params: { open: true } }), { qos: 1 });
  await tb.publishAsync('v1/devices/me/attributes', JSON.stringify({ targetTemperature: 21.5 }), { qos: 1 });
  await tb.publishAsync('v1/devices/me/telemetry', JSON.stringify({ ts: 1700000000000, values: { pressure: 1.8 } }), { qos: 1 });
  await until(() => out.length >= 3, 10_000, 'device records');
  t.same(
    out.map((m) => ({ topic: m.topic, ...json(m) })),
    [
      { topic: 'beats/things/Boiler 7/rpc', device: 'Boiler 7', direction: 'request', id: 5, method: 'setValve', params: { open: true } },
      { topic: 'beats/things/Boiler 7/attributes', device: 'Boiler 7', source: 'update', attributes: { targetTemperature: 21.5 } },
      { topic: 'beats/things/Boiler 7/telemetry', device: 'Boiler 7', ts: 1700000000000, values: { pressure: 1.8 } },
    ],
  );
  await app.publishAsync('beats/things/rpc/Boiler 7/5', 'done', { qos: 1 });
  await app.publishAsync('beats/things/rpc/Boiler 7/attributes', JSON.stringify({ client: ['serial'], shared: ['targetTemperature'] }), {
    qos: 1,
  });
  await until(() => toTb.length >= 2, 10_000, 'reply and attribute request at ThingsBoard');
  const reply = toTb.find((m) => m.topic === 'v1/devices/me/rpc/response/5')!;
  t.equal(reply.payload.toString(), '"done"', 'a text reply is sent as a JSON string');
  const req = toTb.find((m) => m.topic.startsWith('v1/devices/me/attributes/request/'))!;
  t.same(JSON.parse(req.payload.toString()), { clientKeys: 'serial', sharedKeys: 'targetTemperature' });
  const id = req.topic.split('/').pop();
  await tb.publishAsync(
    `v1/devices/me/attributes/response/${id}`,
    JSON.stringify({ client: { serial: 'B7-001' }, shared: { targetTemperature: 21.5 } }),
    { qos: 1 },
  );
  // the subscriber on beats/things/# sees the commands too; the records are the rest
  const records = () => out.filter((m) => !m.topic.startsWith('beats/things/rpc/'));
  await until(() => records().length >= 4, 10_000, 'attribute answer');
  t.same(json(records()[3]), {
    device: 'Boiler 7',
    source: 'response',
    attributes: { serial: 'B7-001', targetTemperature: 21.5 },
    client: { serial: 'B7-001' },
    shared: { targetTemperature: 21.5 },
  });
});

t.test('a refused token gives a clear error and is retried with backoff until accepted', async (t) => {
  const dir = tempDir();
  // a password file the token is not in: Mosquitto answers CONNACK "not authorized"
  const passwd = mosquittoPasswd(dir, 'someone-else', 'pw');
  const peer = await startMosquitto(t, `allow_anonymous false\npassword_file ${passwd}\n`, { dir });
  const { broker, out } = await beatBroker(t, peer);
  const refusals = () => logged(broker).filter((m) => m.startsWith('beat things failed: ThingsBoard at'));
  await until(() => refusals().length >= 2, 15_000, 'two refusals');
  const [first, second] = refusals();
  const why = `ThingsBoard at mqtt://127.0.0.1:${peer.port} refused the connection: not authorized (CONNACK 5); check the access token in things_token_file ${broker.dir}/token`;
  t.equal(first, `beat things failed: ${why}; restarting in 1000 ms`);
  t.equal(second, `beat things failed: ${why}; restarting in 2000 ms`, 'the delay doubles');
  t.notOk(readFileSync(broker.logFile, 'utf8').includes(TOKEN), 'the token is in no log line');

  // ThingsBoard accepts the token now (Mosquitto without a password file accepts any user name)
  await peer.stop();
  writeFileSync(peer.confFile, `listener ${peer.port} 127.0.0.1\nallow_anonymous true\n`);
  await peer.start();
  await beatSubscribed(peer);
  const upstream = await connectClient(t, peer.url);
  await flushed(upstream, out, 'Sentinel');
  t.match(peer.output(), new RegExp(`u'${TOKEN}'`), 'the token went as the MQTT user name');
  t.notOk(readFileSync(broker.logFile, 'utf8').includes(TOKEN), 'still in no log line');
});

t.test('user name and password file authentication', async (t) => {
  const dir = tempDir();
  const passwd = mosquittoPasswd(dir, 'gateway-7', 's3cret-pw');
  const peer = await startMosquitto(t, `allow_anonymous false\npassword_file ${passwd}\n`, { dir });
  const pwFile = join(dir, 'pw');
  writeFileSync(pwFile, 's3cret-pw\n');
  const b = tempDir();
  const conf = [
    'listener 0 127.0.0.1',
    'allow_anonymous true',
    `persistence_location ${b}`,
    'beat things',
    `things_url ${peer.url}`,
    'things_username gateway-7',
    `things_password_file ${pwFile}`,
    '',
  ].join('\n');
  const broker = await startTestBroker(t, conf, { dir: b });
  const sub = await connectClient(t, broker.mqttUrl);
  const out = collect(sub);
  await sub.subscribeAsync('beats/things/#');
  await beatSubscribed(peer);
  const upstream = await connectClient(t, peer.url, { username: 'gateway-7', password: 's3cret-pw' });
  await flushed(upstream, out, 'Sentinel');
  t.pass('connected with user name and password');
  t.notOk(readFileSync(broker.logFile, 'utf8').includes('s3cret-pw'), 'the password is in no log line');
});

t.test('survives ThingsBoard going away and coming back (gateway API replayed through Mosquitto)', async (t) => {
  const peer = await startMosquitto(t);
  const { broker, out } = await beatBroker(t, peer);
  await beatSubscribed(peer);
  let upstream = await connectClient(t, peer.url);
  await flushed(upstream, out, 'Sentinel');
  await peer.stop();
  await until(() => readFileSync(broker.logFile, 'utf8').includes('connection to ThingsBoard at'), 10_000, 'loss noticed');
  t.match(
    readFileSync(broker.logFile, 'utf8'),
    /beat things failed: connection to ThingsBoard at mqtt:\/\/127\.0\.0\.1:\d+ lost; restarting in \d+ ms/,
  );
  await peer.start();
  await beatSubscribed(peer, 'v1/gateway/claim', 2);
  upstream = await connectClient(t, peer.url);
  await upstream.publishAsync('v1/gateway/telemetry', JSON.stringify({ 'Device A': [{ ts: 1, values: { t: 1 } }] }), { qos: 1 });
  await until(() => out.some((m) => m.topic === 'beats/things/Device A/telemetry'), 10_000, 'telemetry after the restart');
  t.pass('records flow again');
});

t.test(
  'hostile input: malformed payloads, unknown devices, 10,000 attributes in one message (gateway API replayed through Mosquitto)',
  async (t) => {
    const peer = await startMosquitto(t);
    const { broker, out } = await beatBroker(t, peer);
    await beatSubscribed(peer);
    const upstream = await connectClient(t, peer.url);
    const bad: [string, string | Buffer][] = [
      ['v1/gateway/telemetry', 'not json'],
      ['v1/gateway/telemetry', Buffer.from([0xff, 0xfe, 0x00, 0x7b])],
      ['v1/gateway/telemetry', '[1,2,3]'],
      ['v1/gateway/telemetry', 'null'],
      ['v1/gateway/telemetry', JSON.stringify({ 'Device A': [{ ts: 'yesterday', values: { t: 1 } }] })],
      ['v1/gateway/telemetry', JSON.stringify({ 'Device A': [{ ts: 1, values: 5 }] })],
      ['v1/gateway/telemetry', JSON.stringify({ 'Device A': 'hot' })],
      ['v1/gateway/attributes', JSON.stringify({ device: 'Device A', data: 'x' })],
      ['v1/gateway/attributes', JSON.stringify({ device: '', data: {} })],
      ['v1/gateway/attributes', JSON.stringify({ ['x'.repeat(300)]: { a: 1 } })],
      ['v1/gateway/rpc', JSON.stringify({ device: 'Device A', data: { id: -1, method: 'm' } })],
      ['v1/gateway/rpc', JSON.stringify({ device: 'Device A', data: { id: 1 } })],
      ['v1/gateway/rpc', JSON.stringify({ device: 'Device A' })],
      ['v1/gateway/attributes/response', JSON.stringify({ id: 999, device: 'Device A', value: 1 })],
      ['v1/gateway/connect', JSON.stringify({ device: 42 })],
      ['v1/gateway/connect', JSON.stringify({ device: 'Device A', type: { nested: true } })],
      ['v1/gateway/claim', JSON.stringify({ 'Device A': { durationMs: 'forever' } })],
      ['v1/gateway/telemetry', '{"a":'.repeat(50_000)],
    ];
    for (const [topic, payload] of bad) await upstream.publishAsync(topic, payload, { qos: 1 });

    // odd but valid: names that are not topic-safe, a device never announced, prototype keys
    await upstream.publishAsync(
      'v1/gateway/attributes',
      '{"plant/#/+": {"ok": true}, "Never Connected": {"__proto__": 1, "constructor": 2}}',
      { qos: 1 },
    );
    // valid JSON nested 200,000 deep (Node 20's JSON.parse overflows its stack on it, Node 26's does not): refused before parsing
    await upstream.publishAsync('v1/gateway/attributes', `{"device":"Deep","data":{"x":${'['.repeat(200_000)}${']'.repeat(200_000)}}}`, {
      qos: 1,
    });
    const many = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`attr${i}`, i]));
    await upstream.publishAsync('v1/gateway/attributes', JSON.stringify({ device: 'Big', data: many }), { qos: 1 });
    await flushed(upstream, out, 'Sentinel');

    const got = out.filter((m) => !m.topic.includes('Sentinel'));
    t.same(
      got.map((m) => m.topic),
      ['beats/things/plant____/attributes', 'beats/things/Never Connected/attributes', 'beats/things/Big/attributes'],
      'only the valid messages became records, wildcard characters made topic-safe',
    );
    t.equal(json(got[0]).device, 'plant/#/+', 'the record keeps the exact device name');
    t.same(
      JSON.parse(got[1].payload.toString()).attributes,
      JSON.parse('{"__proto__":1,"constructor":2}'),
      'prototype keys are plain data',
    );
    t.equal(Object.keys(json(got[2]).attributes).length, 10_000, 'all 10,000 attributes in one record');
    t.equal(json(got[2]).attributes.attr9999, 9999);

    const log = logged(broker).join('\n');
    t.match(log, /refused ThingsBoard input: v1\/gateway\/telemetry: message is not valid JSON/);
    t.match(log, /telemetry "ts" is not a time in epoch milliseconds/);
    t.match(log, /device name longer than 255 characters/);
    t.notMatch(log, /Maximum call stack/, 'the too-deep message never reaches JSON.parse (its refusal is counted below)');
    const metrics = await (await fetch(`http://127.0.0.1:${broker.httpPort}/metrics`)).text();
    t.match(
      metrics,
      /mqprobe_beat_things_rejected_total\{beat="things"\} 19/,
      'each refused message or entry counted, the too-deep one too',
    );
    t.match(metrics, /mqprobe_beat_up\{beat="things"\} 1/, 'the beat is still up');
  },
);
