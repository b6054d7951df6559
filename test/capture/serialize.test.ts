import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventFactory } from '../../capture/build.js';
import type { CaptureEvent } from '../../capture/event.js';
import { ecsLine, fixed } from '../../capture/serialize.js';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { until } from '../helpers/mqtt.js';
import { scriptedSession, securityConf } from './session.js';

t.test('a real session: every line the file sink wrote is what JSON.stringify writes for the same event', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'events.ndjson');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\n${securityConf(dir)}capture_sink file ${out}\ncapture_payload full\ncapture_events all\n`,
    { dir },
  );
  const expected = new Map<number, string>();
  // listeners see each event just before it is serialised, in the state it is serialised in
  b.broker.capture.subscribe((e) => expected.set(e.event.sequence, JSON.stringify(e)));
  await scriptedSession(t, b.mqttUrl, b.port);
  await until(() => b.broker.capture.stats().sinks[0].queued === 0, 5000, 'the file sink to catch up');
  const lines = readFileSync(out, 'utf8').split('\n').filter(Boolean);
  t.ok(lines.length > 25, `${lines.length} events`);
  let same = 0;
  let compared = 0;
  for (const line of lines) {
    const seq = (JSON.parse(line) as CaptureEvent).event.sequence;
    if (!expected.has(seq)) continue; // broker-starting may be flushed before the test's listener came
    compared++;
    if (line === expected.get(seq)) same++;
    else t.equal(line, expected.get(seq), `event ${seq}`);
  }
  t.ok(compared >= lines.length - 1, `${compared} of ${lines.length} lines compared`);
  t.equal(same, compared, 'every compared line identical');
});

const factory = new EventFactory({ name: 'host "quoted" \\ name', id: 'id-1', version: '0.1.0' });
const conn = (remoteAddress: string, transport: 'tcp' | 'ws' | 'internal') =>
  ({ listener: { bind: undefined }, listenerPort: 1883, transport, remoteAddress, remotePort: 40000, openedAt: 0 }) as never;

t.test('hostile values are written exactly as JSON.stringify writes them', async (t) => {
  const nasty = [
    '',
    'plain',
    'quote " and \\ backslash',
    'tab\tnew\nline\r',
    '\u0000\u001f\u007f',
    'é ü 中文 🚀',
    '\ud800 lone \udfff',
    '</script>',
    '\u2028\u2029',
  ];
  for (const [i, s] of nasty.entries()) {
    const e = factory.withClient(
      factory.make('publish-received', 'event', ['network'], ['protocol'], 'success'),
      { id: s } as never,
      conn(i % 2 ? '::ffff:10.0.0.1' : 'fe80::1', i % 3 ? 'tcp' : 'ws'),
      s,
    );
    Object.assign(e.mqtt!, { topic: s, qos: 1, retain: true, dup: false, payload: s, payload_size: s.length });
    e['@timestamp'] = '2026-11-23T10:00:00.000Z';
    e.message = s;
    e.event.reason = s;
    e.error = { message: s, type: undefined as never };
    // the name shows the code points: U+2028 in a TAP line would break the TAP stream itself
    t.equal(ecsLine(e), JSON.stringify(e), `string #${i} (${[...s].map((c) => c.codePointAt(0)!.toString(16)).join(' ')})`);
  }
  const numbers = [0, -0, 1, -1, 0.1, 1e21, 1e-7, 2 ** 53 + 2, NaN, Infinity, -Infinity, Number.MAX_VALUE, Number.MIN_VALUE];
  const e = factory.make('capture-dropped', 'metric', undefined, undefined);
  e.mqprobe = { numbers, each: Object.fromEntries(numbers.map((n, i) => [`n${i}`, n])) };
  t.equal(ecsLine(e), JSON.stringify(e), 'numbers, in arrays and as values');
  e.mqprobe = {
    '10': 'integer-like keys',
    b: 1,
    '2': 'come first',
    a: undefined,
    f: () => 1,
    s: Symbol('x'),
    d: new Date(0),
    buf: Buffer.from('hi'),
    nested: [{ x: undefined }, null, [1, [2]]],
    empty: {},
    nil: null,
    toJ: { toJSON: () => 'custom' },
  };
  t.equal(ecsLine(e), JSON.stringify(e), 'key order, undefined, functions, symbols, Date, Buffer, toJSON, nested arrays, null');
  e.mqprobe = { big: 1n };
  t.throws(() => ecsLine(e), TypeError, 'a BigInt throws as JSON.stringify throws');
});

t.test('a TLS connection, and events whose shared fields were changed after they were built', async (t) => {
  const tlsConn = {
    listener: { bind: '::' },
    listenerPort: 8883,
    transport: 'tls',
    remoteAddress: '2001:db8::1',
    remotePort: 1,
    openedAt: 0,
    tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', subject: 'CN=dev "1"', issuer: 'CN=ca\\x', serial: '0A' },
  } as never;
  const built = () => {
    const e = factory.withClient(
      factory.make('client-connected', 'event', ['session'], ['start'], 'success'),
      { id: 'c' } as never,
      tlsConn,
      'u',
    );
    e.event.id = 'id-1-1';
    return e;
  };
  t.equal(ecsLine(built()), JSON.stringify(built()), 'as built');
  const changes: [string, (e: CaptureEvent) => void][] = [
    ['source replaced', (e) => (e.source = { ip: '10.0.0.9', port: 2 })],
    ['network removed', (e) => delete e.network],
    [
      'observer moved to the end',
      (e) => {
        const o = e.observer;
        delete (e as Partial<CaptureEvent>).observer;
        e.observer = o;
      },
    ],
    ['user replaced', (e) => (e.user = { name: 'other' })],
    ['event.outcome changed', (e) => (e.event.outcome = 'failure')],
    ['event.kind removed', (e) => delete (e.event as Partial<CaptureEvent['event']>).kind],
    ['a field inserted', (e) => Object.assign(e, { extra: 1 })],
  ];
  for (const [what, change] of changes) {
    const a = built();
    change(a);
    t.equal(ecsLine(a), JSON.stringify(a), what);
  }
});

t.test('random events: 2,000 seeded objects of every shape give identical text', async (t) => {
  let seed = 42;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const shared = [fixed({ a: 1, b: ['x', { c: 'd"' }] }), fixed(['p', 'q']), fixed({ deep: { er: { est: 'ü' } } })];
  const value = (depth: number): unknown => {
    const r = rnd();
    if (r < 0.15) return Math.floor(rnd() * 1e6) / (rnd() < 0.5 ? 1 : 7);
    if (r < 0.3) return String.fromCharCode(...Array.from({ length: Math.floor(rnd() * 12) }, () => Math.floor(rnd() * 0x2100)));
    if (r < 0.4) return rnd() < 0.5;
    if (r < 0.45) return undefined;
    if (r < 0.5) return null;
    if (r < 0.6) return shared[Math.floor(rnd() * shared.length)];
    if (depth > 3) return 'leaf';
    if (r < 0.75) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1));
    return Object.fromEntries(
      Array.from({ length: Math.floor(rnd() * 5) }, (_, i) => [rnd() < 0.1 ? String(i) : `k${Math.floor(rnd() * 20)}`, value(depth + 1)]),
    );
  };
  let differing = 0;
  for (let i = 0; i < 2000; i++) {
    const e = factory.withConn(factory.make('publish-received', 'event', ['network'], undefined), conn('127.0.0.1', 'tcp'));
    e.mqprobe = value(0) as Record<string, unknown>;
    if (ecsLine(e) !== JSON.stringify(e)) differing++;
  }
  t.equal(differing, 0, 'no event differs');
});

t.test('fixed() values cannot change after their text was written', async (t) => {
  const v = fixed({ outer: { inner: ['a'] } });
  t.throws(
    () => {
      (v.outer.inner as string[]).push('b');
    },
    TypeError,
    'frozen all the way down',
  );
  t.equal(ecsLine({ v } as never), '{"v":{"outer":{"inner":["a"]}}}');
});
