/**
 * The beats' HTTP routes serve broker identities only, with the ACL deciding (publish right on the
 * beat's topic tree), and every refused HTTP request is captured as `http-refused`, rate limited,
 * without a secret in it. Real HTTP requests (fetch, and raw sockets for what fetch refuses to send).
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hashPassword } from '../../broker/auth/password-hash.js';
import { HTTP_REFUSALS_PER_SECOND } from '../../broker/http/refusals.js';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { until } from '../helpers/mqtt.js';
import { defineProbeBeat } from '../bridges/frame-beat.js';
import { readEvents } from '../capture/session.js';

const PASSWORDS = { fw: 'fw-pw-Lk29x', reader: 'reader-pw-Qm71' };
const FW_TOKEN = 'fw-token-9d8c7b6a5f4e3d2c';
/** fw may publish to the web beat's tree, reader may read everything and publish nothing. */
const ACL = 'user fw\ntopic write beats/web/#\nuser reader\ntopic read #\n';
const SECRETS = [PASSWORDS.fw, PASSWORDS.reader, FW_TOKEN, 'not-the-pw-Zz1'];

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function brokerWithBeat(t: Test, anonymous: boolean) {
  const dir = tempDir();
  writeFileSync(join(dir, 'passwd'), `fw:${await hashPassword(PASSWORDS.fw)}\nreader:${await hashPassword(PASSWORDS.reader)}\n`);
  writeFileSync(join(dir, 'acl'), ACL);
  writeFileSync(join(dir, 'tokens'), `fw:${FW_TOKEN}\n`);
  const probe = defineProbeBeat(t, 'web', {
    async start(ctx) {
      await ctx.http((app) => {
        app.post('/echo', async (req) => ({ body: req.body }));
        app.get('/status', async () => ({ ok: true }));
      });
    },
  });
  const capture = join(dir, 'capture.ndjson');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous ${anonymous}\npassword_file ${join(dir, 'passwd')}\nacl_file ${join(dir, 'acl')}\n` +
      `http_listener 0 127.0.0.1\nhttp_token_file ${join(dir, 'tokens')}\npersistence_location ${dir}\ncapture_sink file ${capture}\nbeat web\n`,
    { dir },
  );
  await until(() => probe.starts === 1);
  const base = `http://127.0.0.1:${b.httpPort}`;
  const post = (path: string, headers: Record<string, string> = {}) =>
    fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"a":1}' });
  const refusals = async () => {
    await b.broker.close();
    return readEvents(capture).filter((e) => e.event.action === 'http-refused');
  };
  return { b, base, post, capture, refusals };
}

/** Sends raw request bytes and resolves with the status line's code (what fetch will not send: NUL bytes, huge heads). */
function rawStatus(port: number, head: Buffer | string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(head));
    let got = '';
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0)));
  });
}

t.test('beat routes: a broker identity with the publish right on the beat topic tree; everyone else 401/403, captured', async (t) => {
  const { b, base, post, capture, refusals } = await brokerWithBeat(t, false);
  const none = await post('/beats/web/echo');
  t.equal(none.status, 401, 'no credentials, anonymous not allowed');
  t.match(none.headers.get('www-authenticate'), /Basic realm="mqprobe"/);
  t.equal((await post('/beats/nobody/echo')).status, 401, 'an unknown beat: 401 too (which beats run is not told)');
  t.equal((await post('/beats/web/echo', { authorization: basic('fw', 'not-the-pw-Zz1') })).status, 401, 'wrong password');
  const ok = await post('/beats/web/echo', { authorization: basic('fw', PASSWORDS.fw) });
  t.equal(ok.status, 200, 'fw with its password');
  t.same(await ok.json(), { body: { a: 1 } });
  t.equal((await fetch(`${base}/beats/web/status`, { headers: { authorization: `Bearer ${FW_TOKEN}` } })).status, 200, 'fw by token');
  const forbidden = await fetch(`${base}/beats/web/status`, { headers: { authorization: basic('reader', PASSWORDS.reader) } });
  t.equal(forbidden.status, 403, 'reader may read everything but publish nothing: refused');
  t.match(await forbidden.text(), /does not let user \\"reader\\" publish to beats\/web\/#/);
  t.equal(
    (await post('/beats/nobody/echo', { authorization: basic('fw', PASSWORDS.fw) })).status,
    404,
    'a known identity learns of a missing beat',
  );
  // hostile headers
  t.equal((await post('/beats/web/echo', { authorization: 'Basic %%%not-base64' })).status, 400, 'bad base64');
  t.equal(
    (await post('/beats/web/echo', { authorization: 'Basic ' + Buffer.from('fw\u0000:x').toString('base64') })).status,
    401,
    'NUL in the user name (base64)',
  );
  t.equal(
    (await post('/beats/web/echo', { authorization: `Basic ${'A'.repeat(12_000)}` })).status,
    400,
    'a 12 kB Basic value without a colon',
  );
  const huge = `POST /beats/web/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Basic ${'A'.repeat(20_000)}\r\nContent-Length: 0\r\n\r\n`;
  t.equal(await rawStatus(b.httpPort!, huge), 431, "a 20 kB Authorization header: Node's parser refuses the head");
  const nul = Buffer.concat([
    Buffer.from('GET /beats/web/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ab'),
    Buffer.from([0]),
    Buffer.from('cd\r\n\r\n'),
  ]);
  t.equal(await rawStatus(b.httpPort!, nul), 400, "a NUL byte in a header: Node's parser refuses the request");
  t.equal((await post('/beats/web/echo', { authorization: basic('fw', PASSWORDS.fw) })).status, 200, 'the listener serves on');

  const events = await refusals();
  const summary = events.map((e) => [e.http.response.status_code, e.event.reason, e.user?.name ?? null]);
  t.same(summary, [
    [401, 'anonymous-not-allowed', null],
    [401, 'anonymous-not-allowed', null],
    [401, 'bad-credentials', 'fw'],
    [403, 'forbidden-topic', 'reader'],
    [400, 'malformed-authorization', null],
    [401, 'unknown-user', 'fw\u0000'],
    [400, 'malformed-authorization', null],
  ]);
  const first = events[0];
  t.same(first.event.category, ['authentication', 'web']);
  t.same(first.event.type, ['access', 'denied']);
  t.equal(first.event.outcome, 'failure');
  t.equal(first.http.request.method, 'POST');
  t.equal(first.url.path, '/beats/web/echo');
  t.equal(first.source.ip, '127.0.0.1');
  t.equal(first.destination.port, b.httpPort);
  t.match(first.message, /^HTTP POST "\/beats\/web\/echo" from 127\.0\.0\.1:\d+ refused: anonymous-not-allowed \(status 401\)$/);
  const text = readFileSync(capture, 'utf8') + readFileSync(b.logFile, 'utf8');
  for (const s of [...SECRETS, Buffer.from(`fw:${PASSWORDS.fw}`).toString('base64'), Buffer.from('fw:not-the-pw-Zz1').toString('base64')])
    t.notOk(text.includes(s), 'no password, token or Basic value in the capture or the log');
});

t.test('allow_anonymous true: anonymous callers are the anonymous user under the ACL (no write grant here: 403)', async (t) => {
  const { post, refusals } = await brokerWithBeat(t, true);
  t.equal((await post('/beats/web/echo')).status, 403, 'anonymous, not granted');
  t.equal((await post('/beats/web/echo', { authorization: basic('fw', PASSWORDS.fw) })).status, 200, 'fw');
  t.equal(
    (await post('/beats/web/echo', { authorization: basic('fw', 'not-the-pw-Zz1') })).status,
    401,
    'a wrong password is no anonymous access',
  );
  t.same(
    (await refusals()).map((e) => [e.http.response.status_code, e.event.reason]),
    [
      [403, 'forbidden-topic'],
      [401, 'bad-credentials'],
    ],
  );
});

t.test(
  `a scanner: beyond ${HTTP_REFUSALS_PER_SECOND} a second refusals are summed into one event per second, each accounted for; /sse refusals too`,
  async (t) => {
    const { base, capture, refusals } = await brokerWithBeat(t, false);
    const started = Date.now();
    const SCANS = 120;
    for (let i = 0; i < SCANS; i += 20)
      await Promise.all(Array.from({ length: 20 }, () => fetch(`${base}/beats/web/status?i=${i}`).then((r) => r.arrayBuffer())));
    const seconds = (Date.now() - started) / 1000;
    const sse = await fetch(`${base}/sse?topic=%23&access_token=${FW_TOKEN}`);
    t.equal(sse.status, 403, '/sse: fw may not read #');
    const events = await refusals();
    const scans = events.filter((e) => e.event.reason === 'anonymous-not-allowed');
    const accounted = events.reduce((n, e) => n + 1 + (e.mqprobe?.http?.suppressed ?? 0), 0);
    t.equal(accounted, SCANS + 1, 'every refusal is an event or counted in the one that ends its second');
    t.ok(
      scans.length <= (HTTP_REFUSALS_PER_SECOND + 1) * (Math.ceil(seconds) + 1),
      `${scans.length} events for ${SCANS} refusals in ${seconds.toFixed(2)} s`,
    );
    const summed = events.find((e) => e.mqprobe?.http?.suppressed);
    t.match(summed?.message, /refusals before it in the same second were not recorded one by one$/);
    t.ok(
      scans.every((e) => e.url.path === '/beats/web/status'),
      'the path without its query',
    );
    const sseRefusal = events.find((e) => e.event.reason === 'forbidden-filter');
    t.same([sseRefusal?.http.response.status_code, sseRefusal?.url.path, sseRefusal?.user.name], [403, '/sse', 'fw']);
    const all = readEvents(capture).map((e) => e.event.action);
    t.equal(all.lastIndexOf('http-refused') < all.indexOf('broker-stopped'), true, 'held-back refusals are recorded before broker-stopped');
    t.notOk(readFileSync(capture, 'utf8').includes(FW_TOKEN), 'the access_token of the query is not captured');
  },
);

t.test('a JSON body nested 200,000 levels deep is a 400 naming the limit, before parsing; the route serves on', async (t) => {
  const { base, post } = await brokerWithBeat(t, false);
  const auth = basic('fw', PASSWORDS.fw);
  const deep = await fetch(`${base}/beats/web/echo`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: auth },
    body: `{"a":${'['.repeat(200_000)}${']'.repeat(200_000)}}`,
  });
  t.equal(deep.status, 400);
  t.match(await deep.text(), /JSON nested deeper than 1000 levels/);
  t.equal((await post('/beats/web/echo', { authorization: auth })).status, 200, 'the next request is served');
});
