import t, { type Test } from 'tap';
import net from 'node:net';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { hashPassword } from '../../broker/auth/password-hash.js';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { collect, connectClient, until } from '../helpers/mqtt.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { SseClient } from '../bridges/sse-client.js';

const PASSWORDS = { alice: 'alice-pw-Zq81', bob: 'bob-pw-7Hk2', pub: 'pub-pw-X9a4' };
const ALICE_TOKEN = 'alice-token-6f1c2d9e8b7a';
const BOB_TOKEN = 'bob-token-0a9b8c7d6e5f4';
/** Anonymous clients may read pub/#; alice a/#; bob everything; pub writes everything. */
const ACL = 'topic read pub/#\nuser alice\ntopic read a/#\nuser bob\ntopic read #\nuser pub\ntopic write #\n';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** A password file and ACL readable by Mosquitto (which runs as user mosquitto), and a token file. */
async function securityFiles(): Promise<{ dir: string; passwd: string; acl: string; tokens: string }> {
  const dir = tempDir('mqprobe-mosquitto-');
  const passwd = join(dir, 'passwd');
  const acl = join(dir, 'acl');
  const tokens = join(dir, 'tokens');
  writeFileSync(passwd, (await Promise.all(Object.entries(PASSWORDS).map(async ([u, p]) => `${u}:${await hashPassword(p)}\n`))).join(''));
  writeFileSync(acl, ACL);
  writeFileSync(tokens, `# user:token\nalice:${ALICE_TOKEN}\nbob:sha256:${sha256(BOB_TOKEN)}\n`);
  for (const f of [passwd, acl, tokens]) chmodSync(f, 0o644);
  chmodSync(dir, 0o755);
  return { dir, passwd, acl, tokens };
}

async function brokerWith(t: Test, anonymous: boolean, extra = '') {
  const f = await securityFiles();
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous ${anonymous}\npassword_file ${f.passwd}\nacl_file ${f.acl}\nhttp_listener 0 127.0.0.1\nhttp_token_file ${f.tokens}\n${extra}`,
    { dir: f.dir },
  );
  const sse = (query: string) => `http://127.0.0.1:${b.httpPort}/sse?${query}`;
  const pub = await connectClient(t, b.mqttUrl, { username: 'pub', password: PASSWORDS.pub });
  return { b, f, sse, pub };
}

t.test(
  'without credentials: 401 with Basic and Bearer challenges when anonymous is off; a wrong password is 401 and never logged',
  async (t) => {
    const { b, sse } = await brokerWith(t, false);
    const none = await fetch(sse('topic=a/%23'));
    t.equal(none.status, 401);
    t.same(none.headers.get('www-authenticate'), 'Basic realm="mqprobe", charset="UTF-8", Bearer realm="mqprobe"');
    t.match(await none.text(), /anonymous access is not allowed/);
    const wrong = 'not-alices-password-Qx7';
    t.equal((await fetch(sse('topic=a/%23'), { headers: { authorization: basic('alice', wrong) } })).status, 401, 'wrong password');
    t.equal((await fetch(sse('topic=a/%23'), { headers: { authorization: basic('mallory', wrong) } })).status, 401, 'unknown user');
    t.equal((await fetch(sse('topic=a/%23'), { headers: { authorization: basic('alice', '') } })).status, 401, 'empty password');
    t.equal((await fetch(sse('topic=a/%23'), { headers: { authorization: `Bearer ${wrong}` } })).status, 401, 'unknown token');
    t.equal((await fetch(sse(`topic=a/%23&access_token=${wrong}`))).status, 401, 'unknown token in the query');
    const ok = new SseClient(t, sse('topic=a/%23'), { headers: { authorization: basic('alice', PASSWORDS.alice) } });
    t.equal(await ok.open(), 200, 'the right password');
    const log = readFileSync(b.logFile, 'utf8');
    t.match(log, /HTTP request to \/sse refused: bad-credentials/);
    t.match(log, /"user":"alice".*refused: bad-credentials/);
    t.match(log, /HTTP request to \/sse refused: unknown-user/);
    t.match(log, /HTTP request to \/sse refused: anonymous-not-allowed/);
    for (const secret of [wrong, PASSWORDS.alice, Buffer.from(`alice:${wrong}`).toString('base64')])
      t.notOk(log.includes(secret), 'no password (or its base64) in the log');
    const metrics = await (await fetch(`http://127.0.0.1:${b.httpPort}/metrics`)).text();
    t.match(metrics, /mqprobe_http_auth_refused_total\{reason="bad-credentials"\} 2/);
    t.match(metrics, /mqprobe_http_auth_refused_total\{reason="unknown-token"\} 2/);
  },
);

t.test(
  'a user with `topic read a/#` sees a/* but not b/*, live and in the history replay; bob (read #) sees both; as Mosquitto 2.0.11 delivers to the same users',
  async (t) => {
    const { f, sse, pub } = await brokerWith(t, false);
    const early = [
      ['a/1', 'x1'],
      ['b/1', 'y1'],
      ['a/2', 'x2'],
    ];
    for (const [topic, payload] of early) await pub.publishAsync(topic, payload, { qos: 1 });
    const alice = new SseClient(t, sse('topic=%23'), {
      headers: { authorization: basic('alice', PASSWORDS.alice), 'last-event-id': '0-0' },
    });
    const bob = new SseClient(t, sse('topic=%23'), { headers: { authorization: basic('bob', PASSWORDS.bob), 'last-event-id': '0-0' } });
    t.equal(await alice.open(), 200, 'alice may subscribe to # (her ACL reads part of it)');
    t.equal(await bob.open(), 200);
    const live = [
      ['b/2', 'y2'],
      ['a/3', 'x3'],
      ['a/deep/er', 'x4'],
    ];
    for (const [topic, payload] of live) await pub.publishAsync(topic, payload, { qos: 1 });
    await until(() => bob.events.length === 6 && alice.events.length === 4, 5000, 'deliveries');
    await new Promise((r) => setTimeout(r, 100));
    t.same(
      alice.events.map((e) => e.event),
      ['a/1', 'a/2', 'a/3', 'a/deep/er'],
      'alice: a/* only, in the replay and live',
    );
    t.same(
      bob.events.map((e) => e.event),
      ['a/1', 'b/1', 'a/2', 'b/2', 'a/3', 'a/deep/er'],
    );

    const resumed = new SseClient(t, sse('topic=%23'), { headers: { authorization: basic('alice', PASSWORDS.alice) } });
    resumed.lastEventId = bob.events[0].id;
    t.equal(await resumed.open(), 200);
    await until(() => resumed.events.length === 3, 5000, 'replay after an id of a message of both');
    await new Promise((r) => setTimeout(r, 100));
    t.same(
      resumed.events.map((e) => e.data),
      ['x2', 'x3', 'x4'],
      'Last-Event-ID replay passes the ACL too',
    );

    const denied = await fetch(sse('topic=b/%23'), { headers: { authorization: basic('alice', PASSWORDS.alice) } });
    t.equal(denied.status, 403, 'a filter her ACL can never deliver to');
    t.same(await denied.json(), { error: 'the ACL refuses topic filter "b/#" to user "alice"' });

    // the same files in Mosquitto 2.0.11: its MQTT subscribers of user alice and bob get the same topics live
    const mosq = await startMosquitto(t, `allow_anonymous false\npassword_file ${f.passwd}\nacl_file ${f.acl}\n`, { dir: f.dir });
    const subs = await Promise.all(
      ['alice', 'bob'].map(async (u) => {
        const c = await connectClient(t, mosq.url, { username: u, password: PASSWORDS[u as 'alice' | 'bob'] });
        const got = collect(c);
        await c.subscribeAsync('#', { qos: 1 });
        return got;
      }),
    );
    const mpub = await connectClient(t, mosq.url, { username: 'pub', password: PASSWORDS.pub });
    for (const [topic, payload] of [...early, ...live]) await mpub.publishAsync(topic, payload, { qos: 1 });
    await until(() => subs[1].length === 6, 5000, 'Mosquitto deliveries');
    await new Promise((r) => setTimeout(r, 100));
    t.same(
      subs[0].map((m) => m.topic),
      alice.events.map((e) => e.event),
      'Mosquitto delivers alice the topics /sse streams her',
    );
    t.same(
      subs[1].map((m) => m.topic),
      bob.events.map((e) => e.event),
      'and bob his',
    );
  },
);

t.test(
  'anonymous viewers with allow_anonymous true get the anonymous ACL; a wrong password is still refused; as Mosquitto 2.0.11 treats MQTT clients',
  async (t) => {
    const { f, sse, pub } = await brokerWith(t, true);
    const anon = new SseClient(t, sse('topic=%23'));
    t.equal(await anon.open(), 200, 'no credentials needed');
    t.equal((await fetch(sse('topic=a/%23'))).status, 403, 'the anonymous ACL has no a/#');
    t.equal(
      (await fetch(sse('topic=pub/%23'), { headers: { authorization: basic('alice', 'wrong-password-123') } })).status,
      401,
      'wrong credentials are not downgraded to anonymous',
    );
    for (const topic of ['a/1', 'pub/1', 'b/1', 'pub/x/y']) await pub.publishAsync(topic, topic, { qos: 1 });
    await until(() => anon.events.length === 2, 5000, 'anonymous deliveries');
    await new Promise((r) => setTimeout(r, 100));
    t.same(
      anon.events.map((e) => e.event),
      ['pub/1', 'pub/x/y'],
    );

    const mosq = await startMosquitto(t, `allow_anonymous true\npassword_file ${f.passwd}\nacl_file ${f.acl}\n`, { dir: f.dir });
    await t.rejects(
      connectClient(t, mosq.url, { username: 'alice', password: 'wrong-password-123' }),
      /Not authorized|Bad username or password/,
      'Mosquitto refuses the wrong password too',
    );
    const sub = await connectClient(t, mosq.url);
    const got = collect(sub);
    await sub.subscribeAsync('#', { qos: 1 });
    const mpub = await connectClient(t, mosq.url, { username: 'pub', password: PASSWORDS.pub });
    for (const topic of ['a/1', 'pub/1', 'b/1', 'pub/x/y']) await mpub.publishAsync(topic, topic, { qos: 1 });
    await until(() => got.length === 2, 5000, 'Mosquitto deliveries');
    await new Promise((r) => setTimeout(r, 100));
    t.same(
      got.map((m) => m.topic),
      anon.events.map((e) => e.event),
      'Mosquitto delivers an anonymous subscriber the same topics',
    );
  },
);

t.test('a bearer token from http_token_file acts as its user (plain or sha256: tokens, header or ?access_token=)', async (t) => {
  const { b, sse, pub } = await brokerWith(t, false);
  const alice = new SseClient(t, sse('topic=%23'), { headers: { authorization: `Bearer ${ALICE_TOKEN}` } });
  const bob = new SseClient(t, sse(`topic=%23&access_token=${BOB_TOKEN}`));
  t.equal(await alice.open(), 200);
  t.equal(await bob.open(), 200, 'a token kept as its sha256 hash');
  t.equal(
    (await fetch(sse('topic=b/%23'), { headers: { authorization: `bearer ${ALICE_TOKEN}` } })).status,
    403,
    "the token has alice's ACL (scheme name case-insensitive)",
  );
  t.equal(
    (await fetch(sse('topic=%23'), { headers: { authorization: `Bearer sha256:${sha256(BOB_TOKEN)}` } })).status,
    401,
    'the hash is not the token',
  );
  for (const topic of ['a/1', 'b/1']) await pub.publishAsync(topic, topic, { qos: 1 });
  await until(() => bob.events.length === 2 && alice.events.length === 1, 5000, 'deliveries');
  t.same(
    alice.events.map((e) => e.event),
    ['a/1'],
  );
  const log = readFileSync(b.logFile, 'utf8');
  t.notOk(log.includes(ALICE_TOKEN) || log.includes(BOB_TOKEN), 'no token in the log');
});

t.test(
  '/metrics and /healthz: open without http_metrics_token_file, a token with it; no user, client id or password in /metrics',
  async (t) => {
    const open = await brokerWith(t, false);
    const client = await connectClient(t, open.b.mqttUrl, {
      clientId: 'cid-visible-only-to-capture',
      username: 'alice',
      password: PASSWORDS.alice,
    });
    await client.subscribeAsync('a/#');
    await open.pub.publishAsync('a/1', 'x', { qos: 1 });
    const m = await fetch(`http://127.0.0.1:${open.b.httpPort}/metrics`);
    t.equal(m.status, 200, 'open without the key');
    const text = await m.text();
    for (const s of ['alice', 'cid-visible-only-to-capture', PASSWORDS.alice, PASSWORDS.pub, '"pub"'])
      t.notOk(text.includes(s), `/metrics does not contain ${s}`);
    t.equal((await fetch(`http://127.0.0.1:${open.b.httpPort}/healthz`)).status, 200);

    const dir = tempDir();
    const token = 'prometheus-scrape-token-4c3b2a';
    writeFileSync(join(dir, 'metrics-token'), `# rotated: old and new\n${token}\nsha256:${sha256('next-scrape-token-9z8y7x')}\n`);
    const b = await startTestBroker(
      t,
      `listener 0 127.0.0.1\nallow_anonymous true\nhttp_listener 0 127.0.0.1\nhttp_metrics_token_file ${join(dir, 'metrics-token')}\n`,
      { dir },
    );
    for (const path of ['/metrics', '/healthz']) {
      const url = `http://127.0.0.1:${b.httpPort}${path}`;
      const none = await fetch(url);
      t.equal(none.status, 401, `${path} without the token`);
      t.equal(none.headers.get('www-authenticate'), 'Bearer realm="mqprobe-metrics"');
      t.equal(
        (await fetch(url, { headers: { authorization: 'Bearer wrong-token-value-000000' } })).status,
        401,
        `${path} with a wrong token`,
      );
      t.equal((await fetch(url, { headers: { authorization: `Bearer ${token}` } })).status, 200, `${path} with the token`);
      t.equal(
        (await fetch(url, { headers: { authorization: 'Bearer next-scrape-token-9z8y7x' } })).status,
        200,
        `${path} with the hashed second token`,
      );
    }
    t.equal(
      (await fetch(`http://127.0.0.1:${b.httpPort}/sse?topic=x`, { headers: { authorization: `Bearer ${token}` } })).status,
      401,
      'the metrics token is no SSE credential',
    );
    const log = readFileSync(b.logFile, 'utf8');
    t.notOk(log.includes(token), 'the token is never logged');
    t.notOk(/"level":50|already sent/.test(log), 'a refused scrape logs no error (the handler did not run after the 401)');
  },
);

t.test('hostile Authorization headers and filters get a clear error; the listener keeps serving', async (t) => {
  const { b, sse } = await brokerWith(t, false);
  const status = async (auth: string, query = 'topic=a/%23') => (await fetch(sse(query), { headers: { authorization: auth } })).status;
  t.equal(await status('Basic !!!not-base64!!!'), 400, 'malformed base64');
  t.equal(await status('Basic YWxpY2U='), 400, 'colon-less Basic value ("alice")');
  t.equal(await status(`Basic ${Buffer.from([0x61, 0x3a, 0xff, 0xfe]).toString('base64')}`), 400, 'credentials that are not UTF-8');
  t.equal(await status('Basic'), 400, 'scheme without credentials');
  t.equal(await status('Digest username="alice"'), 400, 'an unsupported scheme');
  const malformed = await fetch(sse('topic=a'), { headers: { authorization: 'Basic YWxpY2U=' } });
  t.match(await malformed.text(), /malformed Basic credentials/);

  // a raw request: fetch refuses to send a 100 KB header itself in some versions
  const huge = await new Promise<string>((resolve) => {
    const s = net.connect(b.httpPort!, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    s.write(`GET /sse HTTP/1.1\r\nHost: x\r\nAuthorization: Basic ${'A'.repeat(100_000)}\r\n\r\n`);
  });
  t.match(huge, /^HTTP\/1\.1 431/, 'a 100 KB Authorization header: 431 from the HTTP parser');

  const auth = basic('bob', PASSWORDS.bob);
  t.equal(await status(auth, Array.from({ length: 101 }, () => 'topic=a').join('&')), 400, '101 filters');
  const many = await fetch(sse(Array.from({ length: 10_000 }, (_, i) => `topic=t/${i}`).join('&')), {
    headers: { authorization: auth },
  }).then(
    (r) => r.status,
    () => 0,
  );
  t.ok(many === 431 || many === 414 || many === 400, `10,000 filters are refused (${many})`);
  t.equal(await status(auth, `topic=a&access_token=${ALICE_TOKEN}&access_token=${ALICE_TOKEN}`), 200, 'the header wins over the query');
  t.equal((await fetch(sse(`topic=a&access_token=x&access_token=y`))).status, 400, 'access_token given twice');
  const after = new SseClient(t, sse('topic=a/%23'), { headers: { authorization: auth } });
  t.equal(await after.open(), 200, 'still serving');
  t.notOk(readFileSync(b.logFile, 'utf8').includes('A'.repeat(1000)), 'the huge header is not logged');
});

t.test('token files: missing, empty, short, duplicate or malformed tokens stop the start with file, line and key', async (t) => {
  const dir = tempDir();
  const conf = (key: string, file: string) =>
    `listener 0 127.0.0.1\nallow_anonymous true\nhttp_listener 0 127.0.0.1\n${key} ${join(dir, file)}\n`;
  writeFileSync(join(dir, 'empty'), '# nothing\n\n');
  writeFileSync(join(dir, 'short'), 'alice:short\n');
  writeFileSync(join(dir, 'dup'), `alice:${ALICE_TOKEN}\nbob:${ALICE_TOKEN}\n`);
  writeFileSync(join(dir, 'nocolon'), `${ALICE_TOKEN}\n`);
  writeFileSync(join(dir, 'badhash'), 'alice:sha256:1234\n');
  const refused = async (key: string, file: string, re: RegExp) => {
    const err = await startTestBroker(t, conf(key, file), { dir: tempDir() }).then(
      () => new Error('started'),
      (e: Error) => e,
    );
    t.match(err.message, re, `${key} ${file}`);
    t.notOk(err.message.includes(ALICE_TOKEN) || err.message.includes('short\n'), 'the error quotes no token');
  };
  await refused('http_token_file', 'missing', /mqprobe\.conf:4: http_token_file: .*missing: cannot read http_token_file: ENOENT/);
  await refused('http_token_file', 'empty', /mqprobe\.conf:4: http_token_file: .*empty holds no token/);
  await refused('http_token_file', 'short', /http_token_file: .*short:1: user "alice": a token must be at least 16 characters/);
  await refused('http_token_file', 'dup', /http_token_file: .*dup:2: user "bob": this token is already given to user "alice"/);
  await refused('http_token_file', 'nocolon', /http_token_file: .*nocolon:1: expected <user>:<token>/);
  await refused('http_token_file', 'badhash', /badhash:1: user "alice": a sha256: token hash must be 64 hexadecimal digits/);
  await refused('http_metrics_token_file', 'missing', /mqprobe\.conf:4: http_metrics_token_file: .*cannot read/);
  await refused('http_metrics_token_file', 'empty', /http_metrics_token_file: .*empty holds no token/);
  await refused('http_metrics_token_file', 'short', /http_metrics_token_file: .*short:1: a token must be at least 16 characters/);
});

t.test('the log names the address really bound: every interface without an address, the one given otherwise', async (t) => {
  const all = await startTestBroker(t, 'listener 0 127.0.0.1\nallow_anonymous false\nhttp_listener 0\n');
  t.match(
    readFileSync(all.logFile, 'utf8'),
    new RegExp(`http listener on 0\\.0\\.0\\.0:${all.httpPort} \\(every interface\\): clients must log in`),
  );
  t.equal((await fetch(`http://127.0.0.1:${all.httpPort}/sse`)).status, 401, 'reachable on loopback, and closed to anonymous clients');
  const local = await startTestBroker(t, 'listener 0 127.0.0.1\nallow_anonymous true\nhttp_listener 0 127.0.0.1\n');
  t.match(readFileSync(local.logFile, 'utf8'), new RegExp(`http listener on 127\\.0\\.0\\.1:${local.httpPort}: anonymous clients allowed`));
});

t.test("per_listener_settings true: HTTP clients get the first MQTT listener's security", async (t) => {
  const f = await securityFiles();
  const b = await startTestBroker(
    t,
    `per_listener_settings true\nlistener 0 127.0.0.1\nallow_anonymous false\npassword_file ${f.passwd}\nacl_file ${f.acl}\nlistener 0 127.0.0.1\nallow_anonymous true\nhttp_listener 0 127.0.0.1\n`,
    { dir: f.dir },
  );
  const url = `http://127.0.0.1:${b.httpPort}/sse?topic=b/%23`;
  t.equal((await fetch(url)).status, 401, 'the first listener allows no anonymous clients');
  t.equal((await fetch(url, { headers: { authorization: basic('alice', PASSWORDS.alice) } })).status, 403, 'and has the ACL');
  const bob = new SseClient(t, url, { headers: { authorization: basic('bob', PASSWORDS.bob) } });
  t.equal(await bob.open(), 200);
});

t.test('SIGHUP: an open stream follows the reloaded ACL; new tokens work; a broken token file keeps the old ones', async (t) => {
  const { b, f, sse, pub } = await brokerWith(t, false);
  const alice = new SseClient(t, sse('topic=%23'), { headers: { authorization: `Bearer ${ALICE_TOKEN}` } });
  t.equal(await alice.open(), 200);
  await pub.publishAsync('b/1', 'before', { qos: 1 });
  await pub.publishAsync('a/1', 'before', { qos: 1 });
  await until(() => alice.events.length === 1, 5000, 'a/1');
  writeFileSync(f.acl, `${ACL.replace('user alice\ntopic read a/#\n', 'user alice\ntopic read b/#\n')}user carol\ntopic read x/#\n`);
  const carol = 'carol-token-1b2c3d4e5f6a';
  writeFileSync(f.tokens, `alice:${ALICE_TOKEN}\ncarol:${carol}\n`);
  await b.broker.reload();
  // the same topics again: decisions cached for them must not outlive the ACL they came from
  await pub.publishAsync('a/1', 'after', { qos: 1 });
  await pub.publishAsync('b/1', 'after', { qos: 1 });
  await until(() => alice.events.length === 2, 5000, 'b/1 after the reload');
  await new Promise((r) => setTimeout(r, 100));
  t.same(
    alice.events.map((e) => `${e.event} ${e.data}`),
    ['a/1 before', 'b/1 after'],
    'the cached decisions were dropped with the old ACL',
  );
  t.equal((await fetch(sse('topic=x/%23'), { headers: { authorization: `Bearer ${carol}` } })).status, 200, 'a token added to the file');
  t.equal((await fetch(sse('topic=x'), { headers: { authorization: `Bearer ${BOB_TOKEN}` } })).status, 401, 'a token removed from it');
  writeFileSync(f.tokens, 'carol:short\n');
  await b.broker.reload();
  t.equal(
    (await fetch(sse('topic=x/%23'), { headers: { authorization: `Bearer ${carol}` } })).status,
    200,
    'a broken file keeps the tokens it had',
  );
  t.match(readFileSync(b.logFile, 'utf8'), /reload failed; keeping the previous HTTP token files/);
});

t.test("Aedes' own $SYS/<broker id>/… messages (client ids, subscriptions) never reach /sse, even without an ACL", async (t) => {
  const b = await startTestBroker(t, 'listener 0 127.0.0.1\nallow_anonymous true\nsys_interval 1\nhttp_listener 0 127.0.0.1\n');
  const sys = new SseClient(t, `http://127.0.0.1:${b.httpPort}/sse?topic=%24SYS/%23`);
  t.equal(await sys.open(), 200);
  const c = await connectClient(t, b.mqttUrl, { clientId: 'client-id-that-must-stay-inside' });
  await c.subscribeAsync('some/filter');
  c.end();
  await until(() => sys.events.some((e) => e.event === '$SYS/broker/uptime'), 5000, '$SYS/broker/uptime');
  await new Promise((r) => setTimeout(r, 300));
  t.same(
    sys.events.filter((e) => !e.event.startsWith('$SYS/broker/')).map((e) => e.event),
    [],
    'only $SYS/broker/… topics',
  );
  t.notOk(
    sys.events.some((e) => e.data.includes('client-id-that-must-stay-inside')),
    'no client id',
  );
});
