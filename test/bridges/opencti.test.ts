import t from 'tap';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningBroker } from '../../app/assemble.js';
import { loadConfig } from '../../app/config.js';
import { freePort, startTestBroker, tempDir, type TestBroker } from '../helpers/broker.js';
import { collect, connectClient, until } from '../helpers/mqtt.js';
import { fixture } from '../helpers/paths.js';
import { SseClient } from './sse-client.js';
import { OpenCtiReplay, wireEvent, wireEvents, type ConnectionPlan, type WireEvent } from './replay/opencti-stream.js';

const TOKEN = 'a7f3c2d1-opencti-test-token-9e8b';
type Stix = Record<string, any>;

const readJson = (...p: string[]) => JSON.parse(readFileSync(fixture(...p), 'utf8'));
/** Every object of a STIX fixture (a bundle, an array or one object). */
const objectsOf = (v: any): Stix[] => (Array.isArray(v) ? v : v.type === 'bundle' ? v.objects : [v]);
const byId = (objs: Stix[], id: string) => objs.find((o) => o.id === id)!;

/** Event ids after the fixture's last one, one millisecond apart (OpenCTI ids are Redis stream ids `<ms>-<seq>`). */
let clock = 1790263557614;
const nextId = () => `${clock++}-0`;
const message = (verb: string, o: Stix) => ({
  message: `${verb} a ${o.type} \`${o.name ?? o.value ?? o.id}\``,
  origin: { referer: 'mqprobe-test' },
  version: '4',
});

/**
 * The stream the tests replay: the fixture `live-stream.sse` verbatim (create, update, delete), then
 * every object of the OpenCTI and STIX fixtures created in OpenCTI's wire format, then updates in the
 * 6.x form (whole object + `context.patch`), the JSON-patch-only form and the older `x_opencti_patch`
 * form, a delete, a merge and an observable delete.
 */
function fixtureStream(): { events: WireEvent[]; all: Stix[] } {
  const events = wireEvents(readFileSync(fixture('opencti', 'live-stream.sse'), 'utf8'));
  const all: Stix[] = [
    ...['stream-event-data-indicators.json', 'stream-event-data-relationships.json', 'stream-event-data-groupings.json'].flatMap((f) =>
      objectsOf(readJson('opencti', f)),
    ),
    ...readdirSync(fixture('stix'))
      .sort()
      .flatMap((f) => objectsOf(readJson('stix', f))),
  ];
  for (const o of all) events.push(wireEvent(nextId(), 'create', { data: o, ...message('creates', o) }));
  const xolod = byId(all, 'indicator--86d9fae0-300e-54a8-9b7e-041e303406ad');
  events.push(
    wireEvent(nextId(), 'update', {
      data: { ...xolod, revoked: false },
      ...message('updates', xolod),
      context: {
        patch: [{ op: 'replace', path: '/revoked', value: false }],
        reverse_patch: [{ op: 'replace', path: '/revoked', value: true }],
      },
    }),
  );
  events.push(
    wireEvent(nextId(), 'update', {
      data: {
        id: 'indicator--33fe3b22-0201-47cf-85d0-97c02164528d',
        type: 'indicator',
        x_opencti_patch: {
          replace: { pattern: { current: "[ipv4-addr:value = '10.0.0.1']", previous: "[ipv4-addr:value = '10.0.0.0']" } },
        },
      },
      message: 'updates the pattern',
      origin: {},
    }),
  );
  events.push(
    wireEvent(nextId(), 'update', {
      data: { id: 'indicator--2173d108-5714-42fd-8213-4f3790259fda', type: 'indicator', name: 'revoked now' },
      message: 'revokes',
      origin: {},
      context: { patch: [{ op: 'add', path: '/revoked', value: true }], reverse_patch: [{ op: 'remove', path: '/revoked' }] },
    }),
  );
  const hugesoft = byId(all, 'indicator--3f3ff9f1-bb4e-4392-89e5-1991179042ba');
  events.push(wireEvent(nextId(), 'delete', { data: hugesoft, ...message('deletes', hugesoft) }));
  const [target, source] = [
    byId(all, 'indicator--8390fd29-24ed-45d4-84d7-c5e5feaf195d'),
    byId(all, 'indicator--1002c58e-cbde-4930-b5ee-490037fd4f7e'),
  ];
  events.push(wireEvent(nextId(), 'merge', { data: target, ...message('merges', target), context: { sources: [source] } }));
  const ip = byId(all, 'ipv4-addr--1e4ffad7-0b88-41d4-ba4d-77d27490b956');
  events.push(wireEvent(nextId(), 'delete', { data: ip, ...message('deletes', ip) }));
  return { events, all };
}

/** What the fixture stream leaves alive, worked out by hand from the events above. */
const ALIVE: Record<string, string[]> = {
  'indicator--86d9fae0-300e-54a8-9b7e-041e303406ad': ['domain www.xolod-teplo.ru'], // fixture revoked, un-revoked by the 6.x update
  'indicator--031778a4-057f-48e6-9db9-c8d72b81ccd5': ['ip 223.166.0.0/15'],
  'indicator--da1d061b-2bc9-467a-b16f-8d14f468e1f0': ['ip 58.246.0.0/15'],
  'indicator--8ce03314-dfea-4498-ac9b-136e41ab00e4': ['ip 139.226.0.0/15'],
  'indicator--8390fd29-24ed-45d4-84d7-c5e5feaf195d': ['domain arrowservice.net'], // merge target
  'indicator--8d12f44f-8ac0-4b12-8b4a-3699ca8c9691': ['hash 001dd76872d80801692ff942308c64e6'],
  'indicator--745e1537-b4f3-49da-9f64-df6b1b5df190': ['hash 002325a0a67fded0381b5648d7fe9b8e'],
  'indicator--1dbe6ed0-c305-458f-9cce-f83c678f5afd': ['hash 00dbb9e1c09dbdafb360f3163ba5a3de'],
  'indicator--33fe3b22-0201-47cf-85d0-97c02164528d': ['ip 10.0.0.1'], // pattern changed by the x_opencti_patch update
  'domain-name--ecb120bf-2694-4902-a737-62b74539a41b': ['domain example.com'],
  'indicator--a932fcc6-e032-476c-826f-cb970a5a1ade': ['hash ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c'],
  'indicator--9299f726-ce06-492e-8472-2b52ccb53191': ['url http://paypa1.banking.com'],
};

function conf(dir: string, url: string, ports: { mqtt: number | 0; http: number | 0 }, extra: string[] = []): string {
  writeFileSync(join(dir, 'opencti.token'), `${TOKEN}\n`);
  return [
    `listener ${ports.mqtt} 127.0.0.1`,
    'allow_anonymous true',
    `http_listener ${ports.http} 127.0.0.1`,
    `persistence_location ${dir}`,
    'beat opencti',
    `opencti_url ${url}`,
    `opencti_token_file ${join(dir, 'opencti.token')}`,
    ...extra,
    '',
  ].join('\n');
}

/** What the beat published, as `<topic> <payload>`, collected from the broker itself. */
function watch(broker: RunningBroker, into: string[]): void {
  broker.aedes.on('publish', (packet, client) => {
    if (client?.id === '$beat/opencti') into.push(`${packet.topic} ${packet.payload.toString()}`);
  });
}

async function getJson(port: number, path: string): Promise<any> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return res.json();
}

async function metric(httpPort: number, line: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const m = text.split('\n').find((l) => l.startsWith(line));
  return m === undefined ? 0 : Number(m.split(' ').pop());
}

/** The set as `<id> → ['<kind> <value>']`, from the beat's API over HTTP. */
async function indicatorSet(httpPort: number): Promise<Record<string, string[]>> {
  const body = await getJson(httpPort, '/beats/opencti/indicators');
  return Object.fromEntries(body.indicators.map((e: any) => [e.id, e.values.map((v: any) => `${v.kind} ${v.value}`)]));
}

/** Topic and payload each stream event must be published with, once, in stream order. */
function expectedPublishes(events: WireEvent[]): string[] {
  return events.map((e) => {
    const event = /^event: (.*)$/m.exec(e.text)![1];
    const data = JSON.parse(/^data: (.*)$/m.exec(e.text)![1]);
    return `beats/opencti/${event}/${data.data.type} ${JSON.stringify({ id: e.id, event, data })}`;
  });
}

const logText = (b: TestBroker) => readFileSync(b.logFile, 'utf8');

t.test('config errors name file, line and key', async (t) => {
  const dir = tempDir();
  const cases: [string, RegExp][] = [
    ['beat opencti\nopencti_token_file /t\n', /opencti_url: beat opencti needs opencti_url/],
    ['beat opencti\nopencti_url http://x/stream\n', /opencti_token_file: beat opencti needs opencti_token_file/],
    ['beat opencti\nopencti_url ftp://x/stream\nopencti_token_file /t\n', /:3: opencti_url: expected an http:\/\/ or https:\/\/ URL/],
    ['beat opencti\nopencti_url http://u:p@x/stream\nopencti_token_file /t\n', /credentials do not belong in the URL/],
    [
      'beat opencti\nopencti_url http://x/stream\nopencti_token_file /t\nopencti_cafile /ca.pem\n',
      /opencti_cafile: opencti_cafile needs an https:\/\/ opencti_url/,
    ],
    [
      'beat opencti\nopencti_url http://x/stream\nopencti_token_file /t\nopencti_max_event_bytes 12\n',
      /:5: opencti_max_event_bytes: expected at least 1k/,
    ],
  ];
  for (const [text, want] of cases) {
    const file = join(dir, 'm.conf');
    writeFileSync(file, `listener 0 127.0.0.1\n${text}`);
    t.throws(() => loadConfig(file), want, text.replace(/\n/g, ' | '));
  }
});

t.test(
  'replayed wire format: the fixture stream flows exactly once across dropped connections, duplicates and a broker restart; the indicator set holds exactly what it leaves alive',
  async (t) => {
    const { events } = fixtureStream();
    // connection 0 drops mid-event; 1 resends 3 events the beat already has; 2 resends 5 and is held (the broker restarts);
    // 3 (the restarted broker) resends 2 and drops; 4 goes to the end
    const plans: ConnectionPlan[] = [
      { holdAfter: 0, dropAfter: 20 },
      { rewind: 3, dropAfter: 30 },
      { rewind: 5, holdAfter: 30 },
      { rewind: 2, dropAfter: 10 },
      {},
    ];
    const upstream = new OpenCtiReplay(t, events, TOKEN, (n) => plans[n] ?? {});
    await upstream.start();
    const dir = tempDir();
    const ports = { mqtt: await freePort(), http: await freePort() };
    const text = conf(dir, upstream.url, ports);
    const published: string[] = [];
    let b = await startTestBroker(t, text, { dir });
    watch(b.broker, published);
    const sse = new SseClient(t, `http://127.0.0.1:${ports.http}/sse?topic=beats/opencti/%23`, { reconnect: true, retryMs: 100 });
    await sse.open();
    const sub = await connectClient(t, b.mqttUrl);
    const got = collect(sub);
    await sub.subscribeAsync('beats/opencti/#', { qos: 1 });
    upstream.release();

    // 20 + 27 new of 30 (3 resent) + 25 new of 30 (5 resent)
    await until(() => published.length >= 72, 20_000, 'the first 72 events');
    await new Promise((r) => setTimeout(r, 300));
    t.equal(published.length, 72, 'the held connection sent no more');
    t.equal(got.length, published.length, 'the MQTT subscriber got what the beat published so far');
    await b.broker.close();
    upstream.release();
    b = await startTestBroker(t, text, { dir });
    watch(b.broker, published);
    const want = expectedPublishes(events);
    await until(() => published.length >= want.length && sse.events.length >= want.length, 30_000, `${want.length} events`);
    await new Promise((r) => setTimeout(r, 500));

    t.equal(published.length, want.length, 'nothing published twice');
    t.same(published, want, 'every event published once, in stream order, on beats/opencti/<event>/<STIX type> with its metadata');
    const sseGot = sse.events.map((e) => `${e.event} ${e.data}`);
    t.same(sseGot, want, 'SSE: every event exactly once across the broker restart');
    t.ok(sse.connections >= 2, 'the SSE client reconnected across the restart');

    t.equal(upstream.requests.length, 5, 'five connections to the stream');
    t.notOk(upstream.requests[0]['last-event-id'], 'the first connection starts from the beginning');
    t.same(
      upstream.requests.slice(1).map((h) => h['last-event-id']),
      [events[19].id, events[46].id, events[71].id, events[79].id],
      'each reconnection resumes after the last event handled, also after the restart',
    );
    t.ok(
      upstream.requests.every((h) => h.authorization === `Bearer ${TOKEN}` && h.accept === 'text/event-stream'),
      'bearer token and Accept on every request',
    );

    t.same(await indicatorSet(ports.http), ALIVE, 'the indicator set holds exactly the indicators the stream leaves alive');
    const match = (q: string) => getJson(ports.http, `/beats/opencti/indicators/match?${q}`).then((r) => r.matches.map((m: any) => m.id));
    t.same(await match('ip=223.167.10.20'), ['indicator--031778a4-057f-48e6-9db9-c8d72b81ccd5'], 'an address in a /15 range matches');
    t.same(await match('ip=10.0.0.1'), ['indicator--33fe3b22-0201-47cf-85d0-97c02164528d'], 'the updated pattern matches');
    t.same(await match('ip=10.0.0.0'), [], 'the pattern before the update does not');
    t.same(await match('domain=hugesoft.org'), [], 'a deleted indicator does not match');
    t.same(await match('domain=msnhome.org'), [], 'a merged-away indicator does not match');
    t.same(await match('ip=198.51.100.3'), [], 'a deleted observable does not match');
    t.same(
      await match('hash=EF537F25C895BFA782526529A9B63D97AA631564D5D789C2B765448C8635FB6C'),
      ['indicator--a932fcc6-e032-476c-826f-cb970a5a1ade'],
      'hashes match case-insensitively',
    );
    t.same(await match(`url=${encodeURIComponent('http://paypa1.banking.com')}`), ['indicator--9299f726-ce06-492e-8472-2b52ccb53191']);

    t.equal(
      await metric(ports.http, 'mqprobe_beat_opencti_events_total{beat="opencti",outcome="duplicate"}'),
      2,
      'the resent events after the restart were skipped as duplicates',
    );
    t.notOk(logText(b).includes(TOKEN), 'the token is never logged');
  },
);

t.test('replayed wire format: hostile stream input is counted and skipped, the good events around it arrive once', async (t) => {
  const good = (i: number) =>
    wireEvent(`1800000000000-${i}`, 'create', {
      data: { id: `ipv4-addr--0000000${i}-0000-4000-8000-000000000000`, type: 'ipv4-addr', value: `192.0.2.${i}` },
      message: 'creates',
      origin: {},
    });
  const huge = `id: 1800000000000-3\nevent: create\ndata: {"data":{"id":"x","type":"note","content":"${'A'.repeat(50 * 1024 * 1024)}"}}\n\n`;
  const hostile: WireEvent[] = [
    good(1),
    { id: '1800000000000-2', text: 'id: 1800000000000-2\nevent: create\ndata: {"data": {not json\n\n' },
    { id: '1800000000000-3', text: huge },
    { id: '1800000000000-4', text: 'id: 1800000000000-4\nevent: explode\ndata: {"data":{}}\n\n' },
    { id: '1800000000000-5', text: 'id: 1800000000000-5\nevent: create\ndata: {"data":{"name":"no id, no type"}}\n\n' },
    {
      id: '1800000000000-6',
      text: 'id: 1800000000000-6\nevent: create\ndata: {"data":{"id":"indicator--1","type":"indicator","pattern":"[ipv4-addr:value = \'1.2.3.4\'"}}\n\n',
    },
    {
      id: '1800000000000-7',
      text: ': a comment\r\nnonsense line without colon\r\nid: 1800000000000-7\revent: create\rdata: {"data":{"id":"indicator--2","type":"indicator",\ndata: "pattern":"[url:value = \'http://x.example/\'] OR [x-foo:bar = 1]"}}\r\n\r\n',
    },
    {
      id: '1800000000000-0',
      text: 'id: 1800000000000-0\nevent: create\ndata: {"data":{"id":"ipv4-addr--late","type":"ipv4-addr","value":"203.0.113.66"}}\n\n',
    },
    {
      id: '1800000000000-8',
      text: 'id: 1800000000000-8\nevent: create\ndata: {"data":{"id":"indicator--3","type":"indicator","pattern":"[ipv4-addr:value = \'999.1.1.1\']"}}\n\n',
    },
    good(9),
  ];
  const upstream = new OpenCtiReplay(t, hostile, TOKEN);
  await upstream.start();
  const dir = tempDir();
  const b = await startTestBroker(t, conf(dir, upstream.url, { mqtt: 0, http: 0 }), { dir });
  const published: string[] = [];
  watch(b.broker, published);
  await until(() => published.some((p) => p.includes('192.0.2.9')), 60_000, 'the last good event');
  const m = (outcome: string) => metric(b.httpPort!, `mqprobe_beat_opencti_events_total{beat="opencti",outcome="${outcome}"}`);
  t.same(
    published.map((p) => p.split(' ')[0]),
    [
      'beats/opencti/create/ipv4-addr',
      'beats/opencti/create/indicator',
      'beats/opencti/create/indicator',
      'beats/opencti/create/indicator',
      'beats/opencti/create/ipv4-addr',
    ],
    'the good events, the two invalid patterns (events are published as they come) and the multi-line data event published once each; nothing else',
  );
  t.equal(await m('malformed'), 1, 'non-JSON data counted');
  t.equal(await m('oversized'), 1, 'the 50 MB event counted');
  t.equal(await m('unknown'), 1, 'the unknown event type counted');
  t.equal(await m('invalid'), 1, 'the data without a STIX id and type counted');
  t.equal(await m('duplicate'), 1, 'the out-of-order id counted and not published');
  t.equal(
    await metric(b.httpPort!, 'mqprobe_beat_opencti_objects_total{beat="opencti",outcome="unsupported"}'),
    1,
    'the OR with an x-foo observation is an unsupported pattern',
  );
  t.equal(
    await metric(b.httpPort!, 'mqprobe_beat_opencti_objects_total{beat="opencti",outcome="invalid"}'),
    2,
    'the unclosed pattern and the impossible address are invalid',
  );
  t.same(
    Object.keys(await indicatorSet(b.httpPort!)).sort(),
    ['ipv4-addr--00000001-0000-4000-8000-000000000000', 'ipv4-addr--00000009-0000-4000-8000-000000000000'],
    'only the good observables are in the set',
  );
  t.equal(await metric(b.httpPort!, 'mqprobe_beat_restarts_total{beat="opencti"}'), 0, 'the beat never failed');
  const log = logText(b);
  t.match(log, /OpenCTI event 1800000000000-2 skipped: its data is not JSON/);
  t.match(log, /OpenCTI event 1800000000000-3 of more than 16777216 bytes skipped/);
  t.ok(log.length < 1024 * 1024, 'the huge event is not copied into the log');
});

t.test('replayed wire format: a wrong token is a clear error, retried with backoff, never logged', async (t) => {
  const upstream = new OpenCtiReplay(t, [], 'the-right-token');
  await upstream.start();
  const dir = tempDir();
  const b = await startTestBroker(t, conf(dir, upstream.url, { mqtt: 0, http: 0 }), { dir });
  await until(() => logText(b).includes('refused the token'), 10_000, 'the refusal logged');
  t.match(
    logText(b),
    /beat opencti failed: OpenCTI at http:\/\/127\.0\.0\.1:\d+\/stream refused the token \(HTTP 401\): check opencti_token_file; restarting in 1000 ms/,
  );
  await until(() => upstream.requests.length >= 2, 5000, 'a retry');
  t.equal(upstream.requests[1].authorization, `Bearer ${TOKEN}`, 'the retry re-read the token file');
  writeFileSync(join(dir, 'opencti.token'), 'the-right-token\n');
  await until(() => logText(b).includes('following the OpenCTI stream'), 10_000, 'the beat running with the new token');
  t.notOk(logText(b).includes(TOKEN) || logText(b).includes('the-right-token'), 'no token in the log');
});

t.test(
  'replayed wire format: an indicator from the stream makes the threat-intel detector alert on a client connecting from it',
  async (t) => {
    const indicator = {
      id: 'indicator--7f000001-0000-4000-8000-000000000000',
      type: 'indicator',
      spec_version: '2.1',
      name: 'loopback C2',
      pattern: "[ipv4-addr:value = '127.0.0.1']",
      pattern_type: 'stix',
    };
    // the stream is held until the watcher listens (it connects from 127.0.0.1 too)
    const upstream = new OpenCtiReplay(
      t,
      [wireEvent('1800000000001-0', 'create', { data: indicator, message: 'creates', origin: {} })],
      TOKEN,
      () => ({ holdAfter: 0 }),
    );
    await upstream.start();
    const dir = tempDir();
    const b = await startTestBroker(t, conf(dir, upstream.url, { mqtt: 0, http: 0 }), { dir });
    const watcher = await connectClient(t, b.mqttUrl, { clientId: 'alert-watcher' });
    const alerts = collect(watcher);
    await watcher.subscribeAsync('$SYS/broker/alerts/#');
    const out: string[] = [];
    watch(b.broker, out);
    await until(() => upstream.requests.length >= 1, 10_000, 'the beat connecting');
    t.notOk(
      alerts.some((a) => a.topic === '$SYS/broker/alerts/threat-intel'),
      'no alert before the indicator exists',
    );
    upstream.release();
    await until(() => out.length >= 1, 10_000, 'the create event');
    t.ok((await indicatorSet(b.httpPort!))[indicator.id], 'the indicator is in the set');
    await connectClient(t, b.mqttUrl, { clientId: 'from-loopback' });
    await until(() => alerts.some((a) => a.topic === '$SYS/broker/alerts/threat-intel'), 10_000, 'a threat-intel alert');
    const alert = JSON.parse(alerts.find((a) => a.topic === '$SYS/broker/alerts/threat-intel')!.payload.toString());
    t.match(
      alert,
      { threat: { indicator: { name: 'loopback C2', reference: indicator.id } } },
      'the alert names the indicator from the stream',
    );
  },
);
