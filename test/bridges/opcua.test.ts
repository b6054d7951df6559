import t, { type Test } from 'tap';
import { cpSync, existsSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestBroker, tempDir, type TestBroker } from '../helpers/broker.js';
import { collect, connectClient, until } from '../helpers/mqtt.js';
import { startOpcuaServer, type OpcuaServerPeer, type OpcuaVariableSpec } from '../helpers/opcua-server.js';
import { loadConfig } from '../../app/config.js';
import { openSse } from './sse-client.js';

type Msg = { topic: string; payload: Buffer };
type Rec = Record<string, any>;

const PLANT: OpcuaVariableSpec[] = [
  { path: 'Plant/Line1/Temperature', id: 'Line1.Temperature', dataType: 'Double', value: 20 },
  { path: 'Plant/Line2/Temperature', id: 'Line2.Temperature', dataType: 'Double', value: 30 },
  { path: 'Plant/Line1/Pressure', id: 'Line1.Pressure', dataType: 'Double', value: 1.5 },
  { path: 'Plant/Line1/Count', id: 'Line1.Count', dataType: 'Int32', value: 0 },
];
const TANK: OpcuaVariableSpec = { path: 'Plant/Tank/Level', id: 'level', dataType: 'Double', value: 50, euRange: { low: 0, high: 200 } };
const ODD: OpcuaVariableSpec[] = [
  { path: 'Odd/NaN', id: 'nan', dataType: 'Double', value: 'NaN' },
  { path: 'Odd/Big', id: 'big', dataType: 'Int64', value: [0x7fffffff, 0xffffffff] },
  { path: 'Odd/Small', id: 'small', dataType: 'UInt64', value: [0, 42] },
  { path: 'Odd/Bytes', id: 'bytes', dataType: 'ByteString', value: Buffer.from([0, 1, 254, 255]).toString('base64') },
  { path: 'Odd/When', id: 'when', dataType: 'DateTime', value: '2024-02-29T12:00:00.000Z' },
  { path: 'Odd/Text', id: 'text', dataType: 'String', value: 'ünïcødé \u0000 "quoted"' },
  { path: 'Odd/wild', browseName: 'a+b#c/d', id: 'wild', dataType: 'Boolean', value: true },
];
const PREFIX = 'beats/opcua/plant/Objects/Plant';

/**
 * The servers are started once per file (a node-opcua server process takes seconds to start) and
 * shared by the tests in order: what one test changes, later ones do not depend on.
 */
let plant: Promise<OpcuaServerPeer> | undefined;
const plantServer = () => (plant ??= startOpcuaServer(t, { variables: [...PLANT, TANK, ...ODD] }));
let secure: Promise<OpcuaServerPeer> | undefined;
const secureServer = () =>
  (secure ??= startOpcuaServer(t, { variables: PLANT, secure: true, users: [{ name: 'operator', password: 'op-secret-77' }] }));

/**
 * mqprobe with an opcua beat on the server and fast sampling. `out`: every beat record since the broker
 * started, from /sse replaying its history (an MQTT subscriber connecting after the broker started
 * could miss the initial values the beat publishes as soon as it is connected); `mqtt`: what an MQTT
 * subscriber on beats/opcua/# got from the moment it subscribed.
 */
async function beatBroker(
  t: Test,
  server: OpcuaServerPeer,
  lines: string[],
  opts: { dir?: string } = {},
): Promise<{ broker: TestBroker; out: Msg[]; mqtt: Msg[] }> {
  const dir = opts.dir ?? tempDir();
  reuseClientCertificate(join(dir, 'pki'));
  const conf = [
    'listener 0 127.0.0.1',
    'allow_anonymous true',
    'http_listener 0 127.0.0.1',
    `persistence_location ${dir}`,
    'beat opcua',
    'opcua_name plant',
    `opcua_endpoint ${server.endpoint}`,
    `opcua_pki_dir ${join(dir, 'pki')}`,
    'opcua_sampling_interval 50ms',
    'opcua_publishing_interval 100ms',
    ...lines,
    '',
  ].join('\n');
  const broker = await startTestBroker(t, conf, { dir });
  const sub = await connectClient(t, broker.mqttUrl);
  const mqtt = collect(sub);
  await sub.subscribeAsync('beats/opcua/#', { qos: 1 });
  const out: Msg[] = [];
  await openSse(t, broker.httpPort!, 'beats/opcua/#', {
    replay: true,
    onEvent: (e) => out.push({ topic: e.event, payload: Buffer.from(e.data) }),
  });
  return { broker, out, mqtt };
}

/** PKI folders of earlier beats in this file. */
const pkiDirs: string[] = [];

/**
 * Gives a new PKI folder the client certificate and key an earlier beat of this file generated
 * (generating an RSA key takes a while), with nothing trusted yet.
 */
function reuseClientCertificate(pki: string): void {
  const from = pkiDirs.find((d) => existsSync(join(d, 'own', 'certs', 'client_certificate.pem')));
  pkiDirs.push(pki);
  if (from && !existsSync(join(pki, 'own'))) cpSync(join(from, 'own'), join(pki, 'own'), { recursive: true });
}

const json = (m: Msg): Rec => JSON.parse(m.payload.toString());
const on = (out: Msg[], topic: string): Rec[] => out.filter((m) => m.topic === topic).map(json);
const logged = (broker: TestBroker): string[] =>
  readFileSync(broker.logFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { msg: string }).msg);

/** Waits for a record with this value on the topic. */
async function valueArrives(out: Msg[], topic: string, value: unknown, timeoutMs = 15_000): Promise<Rec> {
  await until(() => on(out, topic).some((r) => r.value === value), timeoutMs, `${topic} = ${JSON.stringify(value)}`);
  return on(out, topic).find((r) => r.value === value)!;
}

t.test('config errors name file, line and key', async (t) => {
  const dir = tempDir();
  const base = 'beat opcua\nopcua_name plant\nopcua_endpoint opc.tcp://plc:4840\n';
  const cases: [string, RegExp][] = [
    ['beat opcua\nopcua_endpoint opc.tcp://x:1\nopcua_monitor i=85\n', /opcua_name: beat opcua needs opcua_name/],
    [`${base}`, /opcua_monitor: beat opcua needs at least one opcua_monitor/],
    [
      `${base}opcua_monitor i=85\nopcua_security_policy Basic256Sha256\n`,
      /opcua_security_mode: security policy Basic256Sha256 needs security mode Sign or SignAndEncrypt, got None/,
    ],
    [
      `${base}opcua_monitor i=85\nopcua_security_policy Basic128Rsa15\n`,
      /:6: opcua_security_policy: expected one of None\|Basic256Sha256\|Aes128_Sha256_RsaOaep\|Aes256_Sha256_RsaPss/,
    ],
    [`${base}opcua_monitor ns=2;i=abc\n`, /:5: opcua_monitor: node id "ns=2;i=abc": "i=" needs a number/],
    [`${base}opcua_monitor ns=70000;s=x\n`, /namespace index 70000 is above 65535/],
    [`${base}opcua_monitor Objects/#/Temperature\n`, /# may only stand last/],
    [`${base}opcua_monitor Objects/Pl+nt\n`, /\+ and # must be whole levels/],
    [`${base}opcua_monitor Objects//Plant\n`, /has an empty level/],
    [`${base}opcua_monitor i=85\nopcua_username op\n`, /opcua_password_file: opcua_username and opcua_password_file go together/],
    [`${base}opcua_monitor i=85\nopcua_deadband percent 150\n`, /opcua_deadband: expected a number in 0\.\.100/],
    ['beat opcua\nopcua_name pl/ant\n', /opcua_name: expected one topic level/],
    ['beat opcua\nopcua_name p\nopcua_endpoint http://plc\n', /opcua_endpoint: expected an endpoint such as opc\.tcp:\/\/plc1:4840/],
  ];
  for (const [text, want] of cases) {
    const file = join(dir, 'm.conf');
    writeFileSync(file, `listener 0 127.0.0.1\n${text}`);
    t.throws(() => loadConfig(file), want, text.replace(/\n/g, ' | '));
  }
});

t.test(
  'value changes on a real OPC-UA server arrive on SSE and MQTT; browse paths follow model changes (security None, anonymous)',
  async (t) => {
    const server = await plantServer();
    const { broker, out, mqtt } = await beatBroker(t, server, [
      'opcua_monitor Objects/Plant/+/Temperature',
      'opcua_monitor ns=1;s=Line1.Count',
    ]);

    // initial values first, then changes
    const first = await valueArrives(out, `${PREFIX}/Line1/Temperature`, 20);
    t.match(first, {
      systemName: 'plant',
      endpoint: server.endpoint,
      address: 'ns=1;s=Line1.Temperature',
      browsePath: 'Objects/Plant/Line1/Temperature',
      topicName: 'Objects/Plant/Line1/Temperature',
      topicType: 'Path',
      dataType: 'Double',
      statusCode: 'Good',
      statusCodeValue: 0,
    });
    t.ok(Date.parse(first.sourceTime) > 0 && Date.parse(first.serverTime) > 0, 'source and server timestamps');
    await valueArrives(out, `${PREFIX}/Line2/Temperature`, 30);
    await valueArrives(out, 'beats/opcua/plant/ns=1;s=Line1.Count', 0);
    t.same(on(out, `${PREFIX}/Line1/Pressure`), [], 'Pressure matches no monitor');

    await server.set('Line1.Temperature', 21.25);
    await server.set('Line1.Count', 7);
    const changed = await valueArrives(out, `${PREFIX}/Line1/Temperature`, 21.25);
    t.ok(Date.parse(changed.sourceTime) >= Date.parse(first.sourceTime), 'a newer source timestamp');
    t.match(await valueArrives(out, 'beats/opcua/plant/ns=1;s=Line1.Count', 7), {
      dataType: 'Int32',
      topicType: 'NodeId',
      address: 'ns=1;s=Line1.Count',
    });

    t.same(await valueArrives(mqtt, `${PREFIX}/Line1/Temperature`, 21.25), changed, 'the same change on MQTT');

    // a new line appears: the model change event makes the beat browse again
    await server.add({ path: 'Plant/Line3/Temperature', id: 'Line3.Temperature', dataType: 'Double', value: 40 });
    await valueArrives(out, `${PREFIX}/Line3/Temperature`, 40);
    await server.set('Line3.Temperature', 41);
    await valueArrives(out, `${PREFIX}/Line3/Temperature`, 41);
    // and one goes away
    await server.remove('Line2.Temperature');
    await until(
      () => logged(broker).some((m) => m === 'no longer monitoring Objects/Plant/Line2/Temperature: it is gone from the address space'),
      10_000,
      'Line2 dropped',
    );

    const metrics = await (await fetch(`http://127.0.0.1:${broker.httpPort}/metrics`)).text();
    t.match(metrics, /mqprobe_beat_opcua_monitored_items\{beat="opcua"\} 3/);
    t.match(metrics, /mqprobe_beat_opcua_rebrowses_total\{beat="opcua"\} [1-9]/);
  },
);

t.test('# monitors a whole subtree; NGSI-LD entities', async (t) => {
  const server = await plantServer();
  const { out } = await beatBroker(t, server, ['opcua_monitor Objects/Plant/Line1/#', 'beat_format ngsi-ld']);
  await until(() => new Set(out.map((m) => m.topic)).size >= 4, 15_000, 'four Line1 variables');
  // properties (HasProperty) count as variables below Line1 too
  t.same([...new Set(out.map((m) => m.topic))].sort(), [
    `${PREFIX}/Line1/Count`,
    `${PREFIX}/Line1/NodeVersion`,
    `${PREFIX}/Line1/Pressure`,
    `${PREFIX}/Line1/Temperature`,
  ]);
  const e = json(out.find((m) => m.topic === `${PREFIX}/Line1/Pressure`)!);
  t.equal(e.id, 'urn:ngsi-ld:OpcuaVariable:plant:Objects:Plant:Line1:Pressure');
  t.equal(e.type, 'OpcuaVariable');
  t.match(e.value, { type: 'Property', value: 1.5 });
  t.ok(Date.parse(e.value.observedAt) > 0, 'observedAt is the source timestamp');
  t.match(e.dataType, { type: 'Property', value: 'Double' });
  t.equal(e['@context'], 'https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld');
});

t.test('hostile and odd: value types, names that are not topic-safe, unknown node ids, a # over the whole server', async (t) => {
  const server = await plantServer();
  const { broker, out } = await beatBroker(t, server, [
    'opcua_monitor ns=1;s=DoesNotExist',
    'opcua_monitor Objects/Odd/#',
    'opcua_monitor #',
    'opcua_max_monitored_items 9',
  ]);
  // the 7 variables and the NodeVersion property of Odd; with ns=1;s=DoesNotExist 9 targets, the limit
  await until(() => new Set(out.map((m) => m.topic)).size >= 8, 20_000, 'eight variables');
  const value = (name: string) => on(out, `beats/opcua/plant/Objects/Odd/${name}`)[0];
  t.equal(value('NaN').value, 'NaN', 'NaN as a string: JSON has none');
  t.equal(value('Big').value, '9223372036854775807', 'a 64-bit integer beyond 2^53 as a string');
  t.equal(value('Big').dataType, 'Int64');
  t.equal(value('Small').value, 42);
  t.equal(value('Bytes').value, 'AAH+/w==', 'bytes as base64');
  t.equal(value('When').value, '2024-02-29T12:00:00.000Z');
  t.equal(value('Text').value, 'ünïcødé \u0000 "quoted"');
  const wild = value('a_b_c_d');
  t.match(
    wild,
    { value: true, browsePath: 'Objects/Odd/a+b#c/d', topicName: 'Objects/Odd/a_b_c_d' },
    'wildcards and / in a browse name made topic-safe, the path kept',
  );
  const log = logged(broker);
  t.ok(log.includes('cannot monitor ns=1;s=DoesNotExist: BadNodeIdUnknown'), 'an unknown node id is reported, the rest monitored');
  t.ok(
    log.some((m) => /^opcua_monitor matches \d+ variables more than opcua_max_monitored_items 9; those are not monitored$/.test(m)),
    '# over the whole server is cut off',
  );
  const metrics = await (await fetch(`http://127.0.0.1:${broker.httpPort}/metrics`)).text();
  t.match(metrics, /mqprobe_beat_opcua_monitored_items\{beat="opcua"\} 8/);
});

t.test('deadband and trigger: small moves are not reported', async (t) => {
  const server = await plantServer();
  const { out } = await beatBroker(t, server, [
    'opcua_monitor Objects/Plant/Tank/Level',
    'opcua_monitor ns=1;s=Line1.Count',
    'opcua_deadband percent 1',
  ]);
  const level = `${PREFIX}/Tank/Level`;
  await valueArrives(out, level, 50);
  // 1 % of the range 0..200 is 2: 51 and 51.5 stay inside, 53 leaves it, 54 stays inside again
  for (const v of [51, 51.5, 53]) await server.set('level', v);
  await valueArrives(out, level, 53);
  for (const v of [54, 56.5]) await server.set('level', v);
  await valueArrives(out, level, 56.5);
  t.same(
    on(out, level).map((r) => r.value),
    [50, 53, 56.5],
  );
  // Count is an Int32 without EURange: a percent deadband does not apply, it is monitored without one
  await server.set('Line1.Count', 1);
  await valueArrives(out, 'beats/opcua/plant/ns=1;s=Line1.Count', 1);
});

t.test('a broker restart is reported as a gap too (the beat store keeps when the server was last heard)', async (t) => {
  const server = await plantServer();
  const dir = tempDir();
  const first = await beatBroker(t, server, ['opcua_monitor Objects/Plant/Line1/Temperature'], { dir });
  await until(() => on(first.out, `${PREFIX}/Line1/Temperature`).length > 0, 15_000, 'a first record');
  await first.broker.broker.close();
  const second = await beatBroker(t, server, ['opcua_monitor Objects/Plant/Line1/Temperature'], { dir });
  await until(() => on(second.out, 'beats/opcua/plant/$gap').length === 1, 15_000, 'gap record');
  t.match(on(second.out, 'beats/opcua/plant/$gap')[0], { reason: 'the beat was stopped (broker shutdown or restart)' });
});

t.test('survives a server restart: reconnects, monitors again, reports the gap', async (t) => {
  const server = await plantServer();
  const { broker, out } = await beatBroker(t, server, ['opcua_monitor Objects/Plant/Line1/Temperature']);
  await until(() => on(out, `${PREFIX}/Line1/Temperature`).length > 0, 15_000, 'a first record');
  await server.set('Line1.Temperature', 22);
  await valueArrives(out, `${PREFIX}/Line1/Temperature`, 22);

  await server.stop();
  await until(
    () =>
      logged(broker).some((m) =>
        /^beat opcua failed: connection to opc\.tcp:\/\/127\.0\.0\.1:\d+\/UA\/mqprobe (lost|closed); restarting in \d+ ms$/.test(m),
      ),
    15_000,
    'the loss noticed',
  );
  await server.start(); // a new process: its variables start at their spec values again (the tests after this one use no other state)
  await valueArrives(out, `${PREFIX}/Line1/Temperature`, 20, 30_000);
  await server.set('Line1.Temperature', 23);
  await valueArrives(out, `${PREFIX}/Line1/Temperature`, 23);

  const gaps = on(out, 'beats/opcua/plant/$gap');
  t.equal(gaps.length, 1, 'one gap record');
  t.match(gaps[0], { systemName: 'plant', endpoint: server.endpoint, event: 'gap', reason: /^connection to .* (lost|closed)$/ });
  t.ok(gaps[0].durationMs > 0 && Date.parse(gaps[0].to) - Date.parse(gaps[0].from) === gaps[0].durationMs, 'from, to and duration agree');
  t.ok(
    logged(broker).some((m) => /^no data from opc\.tcp:\/\/\S+ between \S+ and \S+ \(\d+ s\): connection to/.test(m)),
    'the gap logged',
  );
  const metrics = await (await fetch(`http://127.0.0.1:${broker.httpPort}/metrics`)).text();
  t.match(metrics, /mqprobe_beat_opcua_gaps_total\{beat="opcua"\} 1/);
  t.match(metrics, /mqprobe_beat_opcua_gap_seconds_total\{beat="opcua"\} \d/);
});

t.test('Basic256Sha256 SignAndEncrypt with user and password: untrusted server certificate, then trusted', async (t) => {
  const server = await secureServer();
  const dir = tempDir();
  writeFileSync(join(dir, 'password'), 'op-secret-77\n');
  const secure = [
    'opcua_security_policy Basic256Sha256',
    'opcua_security_mode SignAndEncrypt',
    'opcua_username operator',
    `opcua_password_file ${join(dir, 'password')}`,
    'opcua_monitor Objects/Plant/Line1/Temperature',
  ];
  const { broker, out } = await beatBroker(t, server, secure, { dir });

  const pki = join(dir, 'pki');
  const refusal = () => logged(broker).find((m) => m.startsWith('beat opcua failed: the server certificate of'));
  await until(() => refusal() !== undefined, 20_000, 'the refusal');
  const rejected = readdirSync(join(pki, 'rejected'));
  t.equal(rejected.length, 1, 'the server certificate was filed under rejected/');
  t.match(
    refusal()!,
    `the server certificate of ${server.endpoint} is not trusted: ${join(pki, 'rejected', rejected[0])} (subject "`,
    'the error names the certificate file to trust',
  );
  t.match(
    refusal()!,
    `To trust it, move that file into ${join(pki, 'trusted', 'certs')}/ or name it in opcua_server_certificate_file (opcua_trust_on_first_use is off)`,
  );
  t.same(out, [], 'nothing monitored while untrusted');

  // the operator trusts it: the next restart of the beat connects
  renameSync(join(pki, 'rejected', rejected[0]), join(pki, 'trusted', 'certs', rejected[0]));
  await valueArrives(out, `${PREFIX}/Line1/Temperature`, 20, 30_000);
  await server.set('Line1.Temperature', 24.5);
  await valueArrives(out, `${PREFIX}/Line1/Temperature`, 24.5);
  t.ok(logged(broker).includes(`connected to ${server.endpoint} (Basic256Sha256/SignAndEncrypt), monitoring 1 variables`));
  t.notOk(readFileSync(broker.logFile, 'utf8').includes('op-secret-77'), 'the password is in no log line');
});

t.test('opcua_server_certificate_file, trust on first use, a wrong password (Aes256_Sha256_RsaPss / Basic256Sha256)', async (t) => {
  const server = await secureServer();
  const dir = tempDir();
  writeFileSync(join(dir, 'right'), 'op-secret-77\n');
  writeFileSync(join(dir, 'wrong'), 'wrong\n');
  const user = (pw: string) => ['opcua_username operator', `opcua_password_file ${join(dir, pw)}`, 'opcua_monitor ns=1;s=Line1.Pressure'];

  const named = await beatBroker(t, server, [
    'opcua_security_policy Aes256_Sha256_RsaPss',
    'opcua_security_mode Sign',
    `opcua_server_certificate_file ${server.certificateFile}`,
    ...user('right'),
  ]);
  await valueArrives(named.out, 'beats/opcua/plant/ns=1;s=Line1.Pressure', 1.5, 20_000);
  await named.broker.broker.close();

  const tofuDir = tempDir();
  const tofu = await beatBroker(
    t,
    server,
    ['opcua_security_policy Basic256Sha256', 'opcua_security_mode SignAndEncrypt', 'opcua_trust_on_first_use on', ...user('right')],
    { dir: tofuDir },
  );
  await valueArrives(tofu.out, 'beats/opcua/plant/ns=1;s=Line1.Pressure', 1.5, 20_000);
  t.equal(readdirSync(join(tofuDir, 'pki', 'trusted', 'certs')).length, 1, 'the first certificate is kept as trusted');
  t.ok(
    logged(tofu.broker).some((m) =>
      m.startsWith(`trusted the server certificate of ${server.endpoint} on first use: ${join(tofuDir, 'pki', 'trusted', 'certs')}/`),
    ),
  );
  await tofu.broker.broker.close();

  const wrong = await beatBroker(t, server, [
    'opcua_security_policy Basic256Sha256',
    'opcua_security_mode SignAndEncrypt',
    `opcua_server_certificate_file ${server.certificateFile}`,
    ...user('wrong'),
  ]);
  await until(() => logged(wrong.broker).some((m) => m.startsWith('beat opcua failed: the OPC-UA server at')), 20_000, 'the refusal');
  t.match(
    logged(wrong.broker).join('\n'),
    `the OPC-UA server at ${server.endpoint} refused user "operator" (check opcua_username and opcua_password_file): `,
  );
  t.notOk(readFileSync(wrong.broker.logFile, 'utf8').includes('"wrong'), 'the password is in no log line');
});
