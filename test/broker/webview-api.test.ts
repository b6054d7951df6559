import t, { type Test } from 'tap';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { hashPassword } from '../../broker/auth/password-hash.js';
import type { BrokerApi, BrokerEvents } from '../../broker/engine/api.js';
import type { ClientHandle } from '../../broker/engine/client.js';
import { ClientTable } from '../../broker/http/view/clients.js';
import { freePort, startTestBroker, tempDir } from '../helpers/broker.js';
import { startMosquittoWithUser } from '../helpers/mosquitto.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { SseClient } from '../bridges/sse-client.js';

const PW = { viewer: 'viewer-pw-Q1w2', alice: 'alice-pw-Zq81', nosys: 'nosys-pw-7Hk2', pub: 'pub-pw-X9a4' };
const VIEWER_TOKEN = 'viewer-token-6f1c2d9e8b7a';
/** viewer reads everything; alice reads $SYS and a/#; nosys reads a/# only (no view); pub writes. */
const ACL =
  'user viewer\ntopic read #\ntopic read $SYS/#\nuser alice\ntopic read $SYS/#\ntopic read a/#\nuser nosys\ntopic read a/#\nuser pub\ntopic readwrite #\n';
/** A request's status, its body read (an unread body keeps the connection busy and the broker's close waiting). */
async function statusOf(url: string, init?: RequestInit): Promise<number> {
  const res = await fetch(url, init);
  await res.arrayBuffer();
  return res.status;
}

/** until() for a condition that asks the API. */
async function eventually(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const basic = (user: keyof typeof PW) => `Basic ${Buffer.from(`${user}:${PW[user]}`).toString('base64')}`;

async function viewBroker(t: Test, extra = '') {
  const dir = tempDir('mqprobe-view-');
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, (await Promise.all(Object.entries(PW).map(async ([u, p]) => `${u}:${await hashPassword(p)}\n`))).join(''));
  writeFileSync(join(dir, 'acl'), ACL);
  writeFileSync(join(dir, 'tokens'), `viewer:${VIEWER_TOKEN}\n`);
  chmodSync(dir, 0o755);
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous false\npassword_file ${passwd}\nacl_file ${join(dir, 'acl')}\nhttp_listener 0 127.0.0.1\nhttp_token_file ${join(dir, 'tokens')}\n${extra}`,
    { dir },
  );
  const base = `http://127.0.0.1:${b.httpPort}`;
  const get = async (path: string, who: keyof typeof PW | null = 'viewer') => {
    const res = await fetch(base + path, { headers: who ? { authorization: basic(who) } : {} });
    return { status: res.status, headers: res.headers, body: (await res.json().catch(() => undefined)) as any };
  };
  return { b, base, get };
}

t.test('access: 401 without credentials, 403 where the ACL does not let the user read $SYS/#, 200 by password or token', async (t) => {
  const { b, base, get } = await viewBroker(t);
  for (const path of ['/', '/api/clients', '/api/topics', '/api/alerts', '/api/health', '/api/stream', '/api/whoami']) {
    const none = await get(path, null);
    t.equal(none.status, 401, `${path} without credentials`);
    t.match(none.headers.get('www-authenticate'), /Basic realm="mqprobe"/);
    t.equal((await get(path, 'nosys')).status, 403, `${path} for a user without $SYS read`);
  }
  const me = await get('/api/whoami');
  t.same(me.body, { user: 'viewer', method: 'basic' });
  const byToken = await fetch(`${base}/api/whoami`, { headers: { authorization: `Bearer ${VIEWER_TOKEN}` } });
  t.same(await byToken.json(), { user: 'viewer', method: 'bearer' });
  const byQuery = await fetch(`${base}/api/whoami?access_token=${VIEWER_TOKEN}`);
  t.equal(byQuery.status, 200, 'the token in the query, as the page sends it for EventSource');
  await byQuery.body?.cancel();
  const page = await fetch(`${base}/`, { headers: { authorization: basic('viewer') } });
  t.equal(page.status, 200);
  t.match(page.headers.get('content-security-policy'), /script-src 'self'/);
  t.notMatch(page.headers.get('content-security-policy'), /unsafe-inline/);
  t.equal(page.headers.get('x-content-type-options'), 'nosniff');
  const html = await page.text();
  t.notMatch(html, /<script>|<script [^>]*>[^<]/, 'no inline script in the page');
  const asset = await fetch(`${base}/view/app.js`);
  t.equal(asset.status, 200, 'assets carry no data and need no credentials');
  t.match(asset.headers.get('content-type'), /javascript/);
  t.ok((await asset.arrayBuffer()).byteLength > 1000);
  t.equal(await statusOf(`${base}/view/..%2f..%2fpackage.json`), 404, 'only the bundled files are served');
  t.equal(await statusOf(`${base}/view/index.html`), 404, 'the page itself only at / (with credentials)');
  const log = readFileSync(b.logFile, 'utf8');
  for (const secret of [...Object.values(PW), VIEWER_TOKEN]) t.notOk(log.includes(secret), 'no password or token in the log');
});

t.test('cross-site writes are refused on the whole listener; same-origin and non-browser writes reach their route', async (t) => {
  const { base } = await viewBroker(t);
  const evil = { method: 'DELETE', headers: { origin: 'http://evil.example', authorization: basic('viewer') } };
  t.equal(await statusOf(`${base}/bans/ip%2010.0.0.1`, evil), 403);
  t.equal(
    await statusOf(`${base}/bans/x`, { method: 'DELETE', headers: { 'sec-fetch-site': 'cross-site' } }),
    403,
    'Sec-Fetch-Site cross-site',
  );
  const same = { method: 'DELETE', headers: { origin: base, 'sec-fetch-site': 'same-origin' } };
  t.equal(await statusOf(`${base}/bans/x`, same), 404, 'same origin: on to the router (no /bans route on this branch)');
  t.equal(await statusOf(`${base}/bans/x`, { method: 'DELETE' }), 404, 'curl-like: no Origin');
});

t.test('clients, their events, topics and alerts of live mqtt.js clients; names with markup come back as plain JSON strings', async (t) => {
  const { b, get } = await viewBroker(t, 'sys_interval 1\n');
  const hostile = '<script>alert(1)</script>&"\'';
  /** A topic level cannot hold a slash, so no closing tag: markup all the same. */
  const hostileLevel = '<img src=x onerror=alert(1)>&"\'';
  const c1 = await connectClient(t, b.mqttUrl, { username: 'pub', password: PW.pub, clientId: hostile });
  await new Promise<void>((r) => c1.subscribe('a/#', () => r()));
  const c2 = await connectClient(t, b.mqttUrl, { username: 'pub', password: PW.pub, clientId: 'plain-2', protocolVersion: 4 });
  for (let i = 0; i < 5; i++) c2.publish(`a/b/${hostileLevel}`, 'x', { retain: true });
  c2.publish('b/hidden', 'y');
  await until(() => b.broker.broker.connectedClients >= 2);
  const list = await get('/api/clients?sort=id&order=asc');
  t.equal(list.status, 200);
  t.equal(list.body.total, 2);
  const row = list.body.clients.find((c: any) => c.id === hostile);
  t.ok(row, 'the hostile client id, unchanged');
  t.equal(row.user, 'pub');
  t.equal(row.address, '127.0.0.1');
  t.equal(row.subscriptions, 1);
  t.equal(row.protocol, 4);
  t.equal((await get(`/api/clients?filter=${encodeURIComponent('plain')}`)).body.total, 1, 'filter');
  const events = await get(`/api/events?client_id=${encodeURIComponent(hostile)}`);
  t.same(
    events.body.events.map((e: any) => e.action),
    ['client-connected', 'subscription-granted'],
  );
  t.match(events.body.events[1].detail, 'a/# qos 0');

  await eventually(async () => (await get('/api/topics?prefix=a/b')).body.children.length === 1, 5000, 'topic counted');
  const tree = await get('/api/topics?prefix=a/b');
  t.same(tree.body.children[0], {
    ...tree.body.children[0],
    name: hostileLevel,
    path: `a/b/${hostileLevel}`,
    topics: 1,
    retained: 1,
    leaf: true,
  });
  t.same(
    (await get('/api/topics', 'alice')).body.children.map((c: any) => c.name),
    ['a'],
    'alice (read a/#) does not see b/hidden',
  );
  t.same((await get('/api/topics', 'viewer')).body.children.map((c: any) => c.name).sort(), ['a', 'b']);

  // a real alert: detection's wildcard-subscription rule, published on $SYS/broker/alerts/
  const wild = await connectClient(t, b.mqttUrl, { username: 'pub', password: PW.pub, clientId: 'wild<b>card' });
  await new Promise<void>((r) => wild.subscribe('#', () => r()));
  await eventually(async () => (await get('/api/alerts')).body.alerts.length > 0, 5000, 'alert');
  const alert = (await get('/api/alerts')).body.alerts[0];
  t.equal(alert.rule, 'wildcard-subscription');
  t.equal(alert.client_id, 'wild<b>card');
  t.equal((await get(`/api/alerts?after=${(await get('/api/alerts')).body.seq}`)).body.alerts.length, 0, 'after: only newer alerts');

  c1.end(true);
  await eventually(async () => (await get('/api/clients')).body.total === 2, 5000, 'disconnect seen');
  t.notOk(
    (await get('/api/clients')).body.clients.some((c: any) => c.id === hostile),
    'gone after its disconnect',
  );
  const gone = (await get(`/api/events?client_id=${encodeURIComponent(hostile)}`)).body.events;
  t.equal(gone.at(-1).action, 'client-disconnected');

  await eventually(async () => (await get('/api/health')).body.sys['$SYS/broker/clients/connected'] !== undefined, 5000, '$SYS');
  const health = (await get('/api/health')).body;
  t.match(health.sys['$SYS/broker/version'], /mqprobe/);
  t.notOk(
    Object.keys(health.sys).some((k) => k.startsWith('$SYS/broker/alerts/')),
    'alerts are not $SYS figures',
  );
  t.type(health.live.clients, 'number');
  t.ok(Array.isArray(health.history));
});

t.test('hostile query parameters get a clear 400 and cost nothing else', async (t) => {
  const { get } = await viewBroker(t);
  const cases: [string, RegExp][] = [
    ['/api/clients?limit=0', /limit must be an integer from 1 to 500/],
    ['/api/clients?limit=501', /limit must be an integer/],
    ['/api/clients?limit=1e3', /limit must be an integer/],
    ['/api/clients?offset=-1', /offset must be an integer/],
    ['/api/clients?offset=99999999999999999999', /offset must be an integer/],
    ['/api/clients?sort=__proto__', /sort must be one of/],
    ['/api/clients?sort=id&sort=user', /sort given more than once/],
    [`/api/clients?filter=${'x'.repeat(257)}`, /filter is longer than 256/],
    ['/api/topics?prefix=a/%23', /prefix must be a topic name without wildcards/],
    ['/api/topics?prefix=a/%2B/b', /without wildcards/],
    ['/api/topics?prefix=a%00b', /without wildcards/],
    ['/api/alerts?after=x', /after must be an integer/],
    ['/api/topics?busiest=1000', /busiest must be an integer/],
  ];
  for (const [path, error] of cases) {
    const r = await get(path);
    t.equal(r.status, 400, path);
    t.match(r.body.error, error, path);
  }
  t.equal((await get(`/api/events?client_id=${'x'.repeat(70_000)}`)).status, 431, 'a 70 kB URL: Node refuses the header');
  t.match((await get('/api/events?client_id=a&client_id=b')).body.error, /client_id given more than once/);
  t.equal((await get('/api/clients')).status, 200, 'still answering');
});

t.test('a huge topic tree: 30,000 distinct topics, 100 levels deep, tracked up to the limit; the API answers fast', async (t) => {
  const { b, get } = await viewBroker(t);
  const c = await connectClient(t, b.mqttUrl, { username: 'pub', password: PW.pub });
  const deep = Array.from({ length: 100 }, (_, i) => `l${i}`).join('/');
  c.publish(deep, 'x');
  for (let i = 0; i < 30_000; i++) c.publish(`wide/${i % 100}/${i}`, '');
  await eventually(
    async () => {
      const h = (await get('/api/topics?prefix=wide')).body;
      return h.tracked + h.untracked_messages >= 30_001;
    },
    20_000,
    'every message counted',
  );
  const top = (await get('/api/topics')).body;
  t.equal(top.tracked, 10_000, 'tracking stops at the limit');
  t.equal(top.untracked_messages, 20_001, 'the rest is counted');
  const started = Date.now();
  const wide = (await get('/api/topics?prefix=wide&limit=500')).body;
  t.ok(Date.now() - started < 1000, `one level of 10,000 topics in ${Date.now() - started} ms`);
  t.equal(wide.total, 100, 'the 100 children of wide/');
  t.equal(wide.children.length, 100);
  const deepNode = (await get(`/api/topics?prefix=${encodeURIComponent(deep.split('/').slice(0, 99).join('/'))}`)).body;
  t.same(
    deepNode.children.map((n: any) => n.name),
    ['l99'],
    'the 100th level',
  );
});

/** The parts of BrokerApi ClientTable listens to, fed by the test: 100,000 sockets are not to be had on this machine. */
function eventSource() {
  const listeners = new Map<string, ((...args: any[]) => void)[]>();
  const api = {
    on<K extends keyof BrokerEvents>(name: K, fn: (...args: BrokerEvents[K]) => void) {
      listeners.set(name, [...(listeners.get(name) ?? []), fn as any]);
      return () => undefined;
    },
    connOf: () => ({ transport: 'tcp', listenerPort: 1883, remoteAddress: '10.0.0.1' }),
    usernameOf: (c: ClientHandle) => `user-${c.id.slice(-3)}`,
  } as unknown as BrokerApi;
  const emit = (name: string, ...args: unknown[]) => listeners.get(name)?.forEach((f) => f(...args));
  return { api, emit };
}

t.test(
  '100,000 clients through the API paging path (client-ready events fed to the table, not 100,000 sockets): every page bounded, every client once',
  async (t) => {
    const { api, emit } = eventSource();
    const table = new ClientTable(api, []);
    const handles = Array.from({ length: 100_000 }, (_, i) => ({ id: `dev-${String(i).padStart(6, '0')}` }));
    for (const h of handles) emit('client-ready', h);
    for (let i = 0; i < handles.length; i += 7) emit('publish', { topic: 'x' }, handles[i]);
    table.tick(1);
    t.equal(table.size, 100_000);
    let started = Date.now();
    const first = table.page({ filter: '', sort: 'in', desc: true, offset: 0, limit: 500 });
    t.ok(Date.now() - started < 2000, `first sorted page of 100,000 in ${Date.now() - started} ms`);
    t.equal(first.total, 100_000);
    t.equal(first.clients.length, 500);
    t.equal(first.clients[0].in_per_s, 1);
    started = Date.now();
    const seen = new Set<string>();
    for (let offset = 0; offset < 100_000; offset += 500)
      for (const c of table.page({ filter: '', sort: 'in', desc: true, offset, limit: 500 }).clients) seen.add(c.id);
    t.equal(seen.size, 100_000, 'paging through all 200 pages shows every client once');
    t.ok(Date.now() - started < 3000, `200 pages from the one cached sort in ${Date.now() - started} ms`);
    t.equal(table.page({ filter: 'dev-09999', sort: 'id', desc: false, offset: 0, limit: 50 }).total, 10, 'filter');
    for (const h of handles.slice(0, 50_000)) emit('disconnect-reason', h, 'socket-closed');
    t.equal(
      table.page({ filter: '', sort: 'id', desc: false, offset: 0, limit: 1 }).total,
      50_000,
      'a disconnect invalidates the cached order',
    );
  },
);

t.test('the live stream: one tick per 2 s with counts, busiest topics and new alerts; too many viewers get 503', async (t) => {
  const { b, base } = await viewBroker(t);
  const s = new SseClient(t, `${base}/api/stream`, { headers: { authorization: basic('viewer') } });
  t.equal(await s.open(), 200);
  const c = await connectClient(t, b.mqttUrl, { username: 'pub', password: PW.pub, clientId: 'streamer' });
  const timer = setInterval(() => c.publish('a/busy', 'x'), 20);
  t.teardown(() => clearInterval(timer));
  await until(() => s.events.some((e) => e.event === 'tick' && JSON.parse(e.data).busiest.length > 0), 8000, 'a tick with a busy topic');
  const tick = JSON.parse(s.events.filter((e) => e.event === 'tick').at(-1)!.data);
  t.equal(tick.clients.connected, 1);
  t.equal(tick.busiest[0].topic, 'a/busy');
  t.equal(tick.busiest[0].spark.length, 30);
  const noBusiest = await fetch(`${base}/api/topics?busiest=0`, { headers: { authorization: basic('viewer') } });
  t.same(((await noBusiest.json()) as any).busiest, [], 'busiest=0 while topics are busy');
  t.ok(tick.live.in_per_s > 0);
  const wild = await connectClient(t, b.mqttUrl, { username: 'pub', password: PW.pub, clientId: 'wild' });
  await new Promise<void>((r) => wild.subscribe('#', () => r()));
  await until(() => s.events.some((e) => e.event === 'tick' && JSON.parse(e.data).alerts.length > 0), 8000, 'a tick with the alert');
  const alerts = s.events.flatMap((e) => (e.event === 'tick' ? JSON.parse(e.data).alerts : []));
  t.same(
    alerts.map((a: any) => a.rule),
    ['wildcard-subscription'],
    'each alert once',
  );
  const viewers: SseClient[] = [];
  for (let i = 0; i < 63; i++) {
    const v = new SseClient(t, `${base}/api/stream`, { headers: { authorization: basic('viewer') } });
    viewers.push(v);
    t.equal(await v.open(), 200);
  }
  const over = new SseClient(t, `${base}/api/stream`, { headers: { authorization: basic('viewer') } });
  t.equal(await over.open(), 503, 'the 65th viewer');
});

t.test('a view that does not read is disconnected once 256 kB of its stream are unsent: memory per view stays bounded', async (t) => {
  const { b } = await viewBroker(t);
  const c = await connectClient(t, b.mqttUrl, { username: 'pub', password: PW.pub });
  // ten busy topics with 60,000-character names: every tick carries them all (about 600 kB)
  const names = Array.from({ length: 10 }, (_, i) => `a/${String(i).repeat(60_000)}`);
  const timer = setInterval(() => names.forEach((n) => c.publish(n, 'x')), 50);
  t.teardown(() => clearInterval(timer));
  const socket = net.connect(b.httpPort!, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  socket.write(`GET /api/stream HTTP/1.1\r\nhost: x\r\nauthorization: ${basic('viewer')}\r\n\r\n`);
  socket.pause(); // never reads: the kernel's buffers fill, then the broker's
  t.teardown(() => socket.destroy());
  const viewers = async () => {
    const res = await fetch(`http://127.0.0.1:${b.httpPort}/api/health`, { headers: { authorization: basic('viewer') } });
    return ((await res.json()) as any).viewers as number;
  };
  await eventually(async () => (await viewers()) === 1, 5000, 'the view open');
  const started = Date.now();
  // the broker's side: a paused client socket learns of the close only when it reads again
  await eventually(async () => (await viewers()) === 0, 40_000, 'the view dropped');
  t.pass(`dropped after ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

t.test('health: beats and bridges with state, records/s and last error; the error shows no password', async (t) => {
  // the remote: the real Mosquitto, which takes the bridge `up` and refuses the bridge `denied` (wrong password)
  const remote = await startMosquittoWithUser(t, 'gw', 'gw-right-pw-4Rt');
  const bridge = (name: string, password: string) =>
    `connection ${name}\naddress 127.0.0.1:${remote.port}\nremote_username gw\nremote_password ${password}\ntopic a/# out 0\nrestart_timeout 1\n`;
  const deadKafka = await freePort(); // nothing listens there
  const { get, b, base } = await viewBroker(
    t,
    bridge('up', 'gw-right-pw-4Rt') +
      bridge('denied', 'wrong-secret-9Zx') +
      `kafka_bridge analytics\nkafka_brokers 127.0.0.1:${deadKafka}\nkafka_topic a/# mqtt-{2}\n`,
  );
  const part = async (kind: string, name: string) =>
    ((await get('/api/health')).body.bridges as any[]).find((p) => p.kind === kind && p.name === name);
  await eventually(async () => (await part('bridge', 'up'))?.state === 'connected', 20_000, 'bridge up connected');
  const pub = await connectClient(t, b.mqttUrl, { clientId: 'pub-h', username: 'pub', password: PW.pub });
  for (let i = 0; i < 5; i++) await pub.publishAsync(`a/${i}`, 'x', { qos: 1 });
  await eventually(async () => (await part('bridge', 'up'))?.records >= 5, 10_000, 'bridge up counted the messages');
  // records/s is the rate of the last tick: a tick that saw the 5 messages says more than 0
  await eventually(async () => (await part('bridge', 'up'))?.records_per_s > 0, 10_000, 'bridge up records/s');
  t.match(await part('bridge', 'up'), { kind: 'bridge', name: 'up', state: 'connected', last_error: null }, 'up: connected, no error');

  await eventually(async () => (await part('bridge', 'denied'))?.last_error !== null, 20_000, 'bridge denied failed');
  const denied = await part('bridge', 'denied');
  t.match(denied, { state: /waiting|connecting/, last_error: /5|[Nn]ot authori[sz]ed/ }, `denied: ${denied.last_error}`);
  t.type(denied.last_error_at, 'string');

  await eventually(async () => (await part('kafka-bridge', 'analytics'))?.state === 'failing', 30_000, 'kafka bridge failing');
  const kafka = await part('kafka-bridge', 'analytics');
  t.match(kafka.last_error, new RegExp(`127\\.0\\.0\\.1:${deadKafka}`), `kafka: ${kafka.last_error}`);

  // the live stream carries the same entries on every tick
  const s = new SseClient(t, `${base}/api/stream`, { headers: { authorization: basic('viewer') } });
  t.equal(await s.open(), 200);
  await until(() => s.events.some((e) => e.event === 'tick'), 8000, 'a tick');
  const tick = JSON.parse(s.events.find((e) => e.event === 'tick')!.data);
  t.same(
    tick.bridges.map((p: any) => [p.kind, p.name]),
    [
      ['bridge', 'denied'],
      ['bridge', 'up'],
      ['kafka-bridge', 'analytics'],
    ],
    'the stream: bridges, by kind and name',
  );
  t.same(tick.beats, [], 'the stream: no beat');

  const text = JSON.stringify((await get('/api/health')).body);
  for (const secret of ['gw-right-pw-4Rt', 'wrong-secret-9Zx'])
    t.notOk(text.includes(secret), `no password in /api/health (${secret.slice(0, 5)}…)`);
  t.same((await get('/api/health')).body.beats, [], 'no beat configured: an empty list');
});
