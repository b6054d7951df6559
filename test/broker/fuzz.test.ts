/**
 * The protocol fuzzer with a fixed seed (issue 18): hostile MQTT 3.1/3.1.1/5.0 byte streams over TCP
 * and WebSockets against an in-process mqprobe. The long run is `npx tsx bench/fuzz/run.ts`.
 */
import net from 'node:net';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import mqttPacket from 'mqtt-packet';
import t from 'tap';
import { freePort, startTestBroker, tempDir } from '../helpers/broker.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { until } from '../helpers/mqtt.js';
import { runFuzz, roundTrip } from '../../bench/fuzz/drive.js';
import { checkCapture } from '../../bench/fuzz/capture-check.js';
import { fuzzCases, KINDS, type FuzzCase } from '../../bench/fuzz/packets.js';

const SEED = 18;
const CASES = 3000;
const CHECK_EVERY = 250;
/** The first cases of the same seed, against Mosquitto as well. */
const MOSQUITTO_CASES = 1000;
/** After its last byte a connection may stay open this long; then the fuzzer closes it (bench: 150 ms, on a quieter machine). */
const IDLE_MS = 250;
/** Heap plus buffers may grow this much between the first batch and the end (sessions, retained messages). */
const MEMORY_BOUND = 48 * 1024 * 1024;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function liveBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const FUZZ_CONF = (capture: string) =>
  `listener 0 127.0.0.1\nallow_anonymous true\nlistener 0 127.0.0.1\nprotocol websockets\ncapture_sink file ${capture}\n`;

t.test('the generator: the same seed gives the same bytes, every kind and version occurs', async (t) => {
  const a = [...fuzzCases(SEED, 400)];
  const b = [...fuzzCases(SEED, 400)];
  const hex = (cases: FuzzCase[]) => cases.map((c) => Buffer.concat(c.chunks).toString('hex'));
  t.same(hex(a), hex(b), 'reproducible');
  t.notSame(hex([...fuzzCases(SEED + 1, 400)]), hex(a), 'another seed, other bytes');
  t.same(new Set(a.map((c) => c.kind)), new Set(KINDS), 'every kind');
  t.same(new Set(a.map((c) => c.version)), new Set([3, 4, 5]), 'MQTT 3.1, 3.1.1 and 5.0');
  t.same(new Set(a.map((c) => c.delivery)), new Set(['whole', 'chunks', 'drip']), 'every delivery');
  t.ok(
    a.some((c) => c.rawHttp),
    'HTTP straight at the WebSocket listener',
  );
});

t.test(`fuzzer, seed ${SEED}: ${CASES} hostile cases over TCP and WebSockets; no crash, no hang, a gapless capture`, async (t) => {
  const crashes: unknown[] = [];
  const onCrash = (err: unknown) => crashes.push(err);
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  t.teardown(() => {
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
  });

  const dir = tempDir();
  const capture = join(dir, 'capture.ndjson');
  const b = await startTestBroker(t, FUZZ_CONF(capture), { dir });
  const target = { tcpPort: b.broker.ports[0], wsPort: b.broker.ports[1] };
  let baseline = 0;
  const stats = await runFuzz(target, {
    seed: SEED,
    count: CASES,
    concurrency: 16,
    idleMs: IDLE_MS,
    checkEvery: CHECK_EVERY,
    onBatch: (done) => {
      if (done === CHECK_EVERY) baseline = liveBytes();
    },
  });
  t.same(crashes, [], 'no uncaught exception or unhandled rejection');
  t.equal(stats.cases, CASES);
  t.equal(stats.closedByBroker + stats.closedByFuzzer, CASES, 'every connection closed, by the broker or by the fuzzer');
  t.equal(stats.healthChecks, CASES / CHECK_EVERY, 'a QoS 1 round trip after every batch (TCP and WebSockets in turn)');
  t.ok(stats.closedByBroker > CASES / 2, `the broker itself closed most hostile connections (${stats.closedByBroker} of ${CASES})`);
  await until(() => b.broker.aedes.connectedClients === 0, 10_000, 'every fuzz client to be gone from the broker');
  const grown = liveBytes() - baseline;
  t.ok(
    grown < MEMORY_BOUND,
    `heap + buffers grew ${(grown / 1048576).toFixed(1)} MiB after the first batch (bound ${MEMORY_BOUND / 1048576} MiB)`,
  );
  await roundTrip(b.mqttUrl, 'after-fuzz');
  t.comment(
    `closed by broker ${stats.closedByBroker}, by fuzzer ${stats.closedByFuzzer}, ws handshakes refused ${stats.handshakesRefused}, ${stats.durationMs} ms`,
  );

  await b.broker.close();
  let v5Refused = 0;
  let v5Connected = 0;
  const check = await checkCapture(capture, (e) => {
    if (e.event.action === 'connection-refused' && e.event.reason === 'protocol-version') v5Refused++;
    if (e.event.action === 'client-connected' && e.mqtt?.protocol_version === 5) v5Connected++;
  });
  t.same(check.problems, [], 'every capture line is JSON and event.sequence runs 1..N');
  t.ok(check.lines > CASES, `capture lines: ${check.lines}`);
  t.ok((check.byAction['protocol-error'] ?? 0) > CASES / 4, `protocol-error events: ${check.byAction['protocol-error']}`);
  t.equal(check.byAction['broker-stopped'], 1, 'the capture ends with the broker stopping');
  t.notOk(check.byAction['capture-dropped'], 'nothing dropped');
  // MQTT 5.0 is spoken: well-formed 5.0 CONNECTs connect, none is refused for its version
  t.ok(v5Connected > stats.byVersion[5] / 10, `MQTT 5.0 clients connected: ${v5Connected}`);
  t.equal(v5Refused, 0, 'no MQTT 5.0 CONNECT refused as protocol-version');
  t.same(crashes, [], 'still no uncaught exception after close');
});

t.test(
  `the same ${MOSQUITTO_CASES} cases against Mosquitto 2.0.11: it survives them too, and both close every packet-before-CONNECT and second CONNECT`,
  async (t) => {
    const ws = await freePort();
    const m = await startMosquitto(t, `allow_anonymous true\nlistener ${ws} 127.0.0.1\nprotocol websockets\n`);
    const dir = tempDir();
    const b = await startTestBroker(t, FUZZ_CONF(join(dir, 'capture.ndjson')), { dir });
    const opts = { seed: SEED, count: MOSQUITTO_CASES, concurrency: 16, idleMs: IDLE_MS, checkEvery: CHECK_EVERY };
    const mosq = await runFuzz({ tcpPort: m.port, wsPort: ws }, opts);
    const probe = await runFuzz({ tcpPort: b.broker.ports[0], wsPort: b.broker.ports[1] }, opts);
    t.equal(mosq.healthChecks, MOSQUITTO_CASES / CHECK_EVERY, 'Mosquitto answered every health check');
    for (const kind of ['before-connect', 'second-connect']) {
      // both brokers close at once; the 5% margin is for a busy machine, where IDLE_MS can pass before a close
      for (const [name, s] of [
        ['Mosquitto', mosq],
        ['mqprobe', probe],
      ] as const) {
        t.ok(
          s.brokerClosedByKind[kind] >= s.byKind[kind] * 0.95,
          `${name} closed ${s.brokerClosedByKind[kind]} of ${s.byKind[kind]} ${kind} connections itself`,
        );
      }
    }
    t.comment(
      `closed by the broker, by kind: ${KINDS.map((k) => `${k} ${probe.brokerClosedByKind[k] ?? 0}/${mosq.brokerClosedByKind[k] ?? 0}`).join(', ')} (mqprobe/Mosquitto)`,
    );
  },
);

/** CONNECT (and a packet), then PINGREQ: 'closed' when the broker closes the connection, 'answered' when PINGRESP comes back. */
function closesOn(port: number, bytes: Buffer[]): Promise<'closed' | 'answered'> {
  return new Promise((resolve) => {
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.concat([...bytes, Buffer.from([0xc0, 0x00])])));
    const timer = setTimeout(() => s.destroy(), 5000);
    parser.on('packet', (p) => {
      if (p.cmd !== 'pingresp') return;
      clearTimeout(timer);
      s.destroy();
      resolve('answered');
    });
    parser.on('error', () => undefined);
    s.on('data', (d) => parser.parse(d));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
  });
}

/** Encodes `packet` with the placeholder `QQ` in one string, then puts `bad` (two bytes) in its place. */
function withBadBytes(packet: mqttPacket.Packet, bad: number[]): Buffer {
  const b = mqttPacket.generate(packet);
  const at = b.indexOf('QQ');
  Buffer.from(bad).copy(b, at);
  return b;
}

const connect = (id: string, extra: Record<string, unknown> = {}) =>
  ({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId: id,
    keepalive: 0,
    ...extra,
  }) as mqttPacket.IConnectPacket;
/** Strings that MQTT-1.5.3-1/-2 say the receiver must close the connection for (found by the fuzzer, bad-utf8 cases). */
const ILL_FORMED: [string, Buffer[]][] = [
  ['client id with 0xC3 0x28', [withBadBytes(connect('u8-QQ'), [0xc3, 0x28])]],
  ['user name with 0xC0 0x80 (overlong U+0000)', [withBadBytes(connect('u8-user', { username: 'aQQ' }), [0xc0, 0x80])]],
  [
    'will topic with 0xED 0xA0 (a surrogate)',
    [withBadBytes(connect('u8-will', { will: { topic: 'w/QQ', payload: Buffer.from('x'), qos: 0, retain: false } }), [0xed, 0xa0])],
  ],
  [
    'SUBSCRIBE filter with 0xFF 0xFE',
    [
      mqttPacket.generate(connect('u8-sub')),
      withBadBytes(
        { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'f/QQ', qos: 0 }] } as mqttPacket.ISubscribePacket,
        [0xff, 0xfe],
      ),
    ],
  ],
  [
    'SUBSCRIBE filter with U+0000',
    [
      mqttPacket.generate(connect('u8-nul')),
      withBadBytes(
        { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'f/QQ', qos: 0 }] } as mqttPacket.ISubscribePacket,
        [0x61, 0x00],
      ),
    ],
  ],
];

t.test('ill-formed UTF-8 and U+0000 in MQTT strings close the connection (MQTT-1.5.3-1/-2), Mosquitto 2.0.11 and mqprobe', async (t) => {
  const m = await startMosquitto(t);
  const b = await startTestBroker(t);
  for (const [broker, port] of [
    ['Mosquitto', m.port],
    ['mqprobe', b.port],
  ] as const) {
    for (const [name, bytes] of ILL_FORMED) t.equal(await closesOn(port, bytes), 'closed', `${broker}: ${name}`);
    t.equal(
      await closesOn(port, [mqttPacket.generate(connect(`u8-good`))]),
      'answered',
      `${broker}: a well-formed session is answered (the probe can tell)`,
    );
  }
});
