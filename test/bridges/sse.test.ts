import t from 'tap';
import net from 'node:net';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { fixture } from '../helpers/paths.js';
import { SseClient } from './sse-client.js';

const conf = (extra = '') => `listener 0 127.0.0.1\nallow_anonymous true\nhttp_listener 0 127.0.0.1\n${extra}`;

async function metric(httpPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line === undefined ? NaN : Number(line.split(' ').pop());
}

t.test('streams any broker topic with MQTT filter semantics', async (t) => {
  const b = await startTestBroker(t, conf('sys_interval 1\n'));
  const url = (q: string) => `http://127.0.0.1:${b.httpPort}/sse?${q}`;
  const plus = new SseClient(t, url('topic=a/%2B'));
  const two = new SseClient(t, url('topic=x/y&topic=z/%23'));
  const all = new SseClient(t, url(''));
  const sys = new SseClient(t, url('topic=%24SYS/broker/uptime'));
  for (const c of [plus, two, all, sys]) t.equal(await c.open(), 200);
  const pub = await connectClient(t, b.mqttUrl);
  for (const topic of ['a/b', 'a/c', 'a/b/c', 'x/y', 'z', 'z/1/2', 'q']) await pub.publishAsync(topic, `m:${topic}`, { qos: 1 });
  await pub.publishAsync('multi/line', 'l1\nl2\r\nl3\rl4', { qos: 1 });
  await until(() => all.on('multi/line').length === 1 && sys.events.length > 0, 5000, 'deliveries');
  t.same(
    plus.events.map((e) => e.event),
    ['a/b', 'a/c'],
    '+ matches one level',
  );
  t.same(
    two.events.map((e) => e.event),
    ['x/y', 'z', 'z/1/2'],
    'several filters; # matches the parent level',
  );
  t.same(
    all.events.filter((e) => !e.event.startsWith('$')).map((e) => e.event),
    ['a/b', 'a/c', 'a/b/c', 'x/y', 'z', 'z/1/2', 'q', 'multi/line'],
    'default filter #',
  );
  t.notOk(
    all.events.some((e) => e.event.startsWith('$')),
    '# does not match $SYS topics',
  );
  t.equal(sys.events[0].event, '$SYS/broker/uptime', '$SYS topics with a $SYS filter');
  t.same(
    plus.events.map((e) => e.data),
    ['m:a/b', 'm:a/c'],
    'data is the payload',
  );
  t.equal(all.on('multi/line')[0].data, 'l1\nl2\nl3\nl4', 'a payload with line breaks arrives as several data lines');
  t.match(all.events[0].id, /^\d+-\d+$/, 'ids are <boot>-<sequence>');
  t.match(plus.comments[0], /mqprobe sse, topics a\/\+/);
  t.equal(await metric(b.httpPort!, 'mqprobe_sse_clients'), 4);
});

t.test('resuming with Last-Event-ID gets exactly what was missed, once', async (t) => {
  const b = await startTestBroker(t, conf('http_sse_history 5\n'));
  const url = `http://127.0.0.1:${b.httpPort}/sse?topic=r/%23`;
  const pub = await connectClient(t, b.mqttUrl);
  const send = async (from: number, to: number) => {
    for (let i = from; i < to; i++) await pub.publishAsync(`r/${i}`, String(i), { qos: 1 });
  };
  const first = new SseClient(t, url);
  await first.open();
  await send(0, 3);
  await until(() => first.events.length === 3);
  first.close();
  await send(3, 6);
  const again = new SseClient(t, url);
  again.lastEventId = first.lastEventId;
  await again.open();
  await until(() => again.events.length === 3);
  await send(6, 7);
  await until(() => again.events.length === 4);
  t.same(
    again.events.map((e) => e.data),
    ['3', '4', '5', '6'],
    'the missed messages, then live ones, none twice',
  );

  const late = new SseClient(t, url);
  late.lastEventId = first.lastEventId;
  await send(7, 12);
  await late.open();
  await until(() => late.events.length === 5);
  t.same(
    late.events.map((e) => e.data),
    ['7', '8', '9', '10', '11'],
    'the history holds the last http_sse_history messages',
  );
  t.match(late.comments.join('\n'), /history starts after \d+-\d+; older messages are lost/, 'a gap is announced');

  const otherBoot = new SseClient(t, url);
  otherBoot.lastEventId = '1-99999';
  await otherBoot.open();
  await until(() => otherBoot.events.length === 5);
  t.same(
    otherBoot.events.map((e) => e.data),
    ['7', '8', '9', '10', '11'],
    'an id from an earlier broker run gets the whole history',
  );

  const query = new SseClient(t, `${url}&lastEventId=${encodeURIComponent(late.events[1].id!)}`);
  await query.open();
  await until(() => query.events.length === 3);
  t.same(
    query.events.map((e) => e.data),
    ['9', '10', '11'],
    '?lastEventId= works like the header',
  );
});

t.test('heartbeats, and a client that does not read is dropped instead of buffered', async (t) => {
  const b = await startTestBroker(t, conf('http_sse_heartbeat 200ms\nhttp_sse_client_buffer 64k\nhttp_sse_history 10\n'));
  const idle = new SseClient(t, `http://127.0.0.1:${b.httpPort}/sse?topic=none`);
  await idle.open();
  await until(() => idle.comments.some((c) => c.startsWith('heartbeat')), 3000, 'a heartbeat comment');

  // a reader of the same topic, which the stalled client must not hold up
  const reader = new SseClient(t, `http://127.0.0.1:${b.httpPort}/sse?topic=big`);
  await reader.open();
  // a raw socket that sends the request and never reads the stream
  const stuck = net.connect(b.httpPort!, '127.0.0.1');
  t.teardown(() => stuck.destroy());
  stuck.write('GET /sse?topic=big HTTP/1.1\r\nHost: x\r\n\r\n');
  stuck.pause();
  await until(() => true);
  await new Promise((r) => setTimeout(r, 200));
  const pub = await connectClient(t, b.mqttUrl);
  const payload = Buffer.alloc(100 * 1024, 'x');
  let sent = 0;
  for (; sent < 400 && (await metric(b.httpPort!, 'mqprobe_sse_clients_dropped_total')) < 1; sent += 20) {
    await Promise.all(Array.from({ length: 20 }, () => pub.publishAsync('big', payload, { qos: 1 })));
  }
  t.equal(await metric(b.httpPort!, 'mqprobe_sse_clients_dropped_total'), 1, 'the stalled client was dropped');
  await until(() => reader.events.length === sent, 10_000, 'every message at the reading client');
  t.ok(
    reader.events.every((e) => e.data.length === payload.length),
    `the reading client got all ${sent} messages whole, beside the stalled one`,
  );
  await until(() => stuck.destroyed || stuck.readableEnded || stuck.closed, 5000, 'the socket closed by the broker').catch(() => undefined);
  t.equal(await metric(b.httpPort!, 'mqprobe_sse_clients'), 2, 'only the reading clients remain');
  const after = new SseClient(t, `http://127.0.0.1:${b.httpPort}/sse?topic=after`);
  await after.open();
  await pub.publishAsync('after', 'ok', { qos: 1 });
  await until(() => after.events.length === 1, 5000, 'delivery after the drop');
  t.match(readFileSync(b.logFile, 'utf8'), /SSE client dropped: it reads slower than messages arrive/);
});

t.test('a beat burst of 20,000 records reaches a reading client whole, while a client that does not read is dropped', async (t) => {
  const dir = tempDir();
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  // the default http_sse_client_buffer (1M): the burst is handled by the broker in batches of thousands of records
  const b = await startTestBroker(t, conf(`persistence_location ${dir}\nbeat zeek\nzeek_log_dir ${logs}\nzeek_start beginning\n`), { dir });
  const reader = new SseClient(t, `http://127.0.0.1:${b.httpPort}/sse?topic=beats/zeek/%23`);
  t.equal(await reader.open(), 200);
  const stuck = net.connect(b.httpPort!, '127.0.0.1');
  t.teardown(() => stuck.destroy());
  stuck.write('GET /sse?topic=beats/zeek/%23 HTTP/1.1\r\nHost: x\r\n\r\n');
  stuck.pause();
  for (let tries = 0; (await metric(b.httpPort!, 'mqprobe_sse_clients')) !== 2; tries++) {
    if (tries > 250) throw new Error('the stalled client never connected');
    await new Promise((r) => setTimeout(r, 20));
  }

  // a conn.log of 20,000 records (the fixture's, with fresh uids) appears at once
  const fixtureLines = readFileSync(fixture('zeek', 'conn.log'), 'utf8')
    .split('\n')
    .filter((l) => l !== '');
  const records = fixtureLines.filter((l) => !l.startsWith('#'));
  const n = 20_000;
  const uids = Array.from({ length: n }, (_, i) => `Cburst${String(i).padStart(6, '0')}`);
  const body = uids.map((uid, i) => {
    const f = records[i % records.length].split('\t');
    f[1] = uid;
    return f.join('\t');
  });
  writeFileSync(
    join(dir, 'conn.log'),
    `${[...fixtureLines.filter((l) => l.startsWith('#') && !l.startsWith('#close')), ...body].join('\n')}\n`,
  );
  renameSync(join(dir, 'conn.log'), join(logs, 'conn.log'));

  await until(() => reader.events.length >= n, 60_000, `${n} events at the reading client`);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(reader.events.length, n, 'no event twice');
  t.same(
    reader.events.map((e) => (JSON.parse(e.data) as { uid: string }).uid),
    uids,
    'every record, in file order',
  );
  t.ok(reader.events.every((e) => e.event === 'beats/zeek/conn'));
  t.equal(reader.connections, 1, 'the reading client was never dropped');
  t.equal(await metric(b.httpPort!, 'mqprobe_sse_clients_dropped_total'), 1, 'the client that does not read was dropped');
  t.equal(await metric(b.httpPort!, 'mqprobe_sse_clients'), 1, 'only the reading client remains');
});

t.test('a client resuming into a history of several MiB takes it whole while live messages flow', async (t) => {
  const b = await startTestBroker(t, conf('http_sse_history 100000\nhttp_sse_history_bytes 64M\n'));
  const pub = await connectClient(t, b.mqttUrl);
  const payload = (i: number) => `${i}:${'h'.repeat(2000)}`;
  const kept = 4000;
  for (let i = 0; i < kept; i += 500)
    await Promise.all(Array.from({ length: 500 }, (_, j) => pub.publishAsync('hist', payload(i + j), { qos: 1 })));
  // 8 MB of history, far over the default 1 MiB client buffer, replayed at once
  const resumed = new SseClient(t, `http://127.0.0.1:${b.httpPort}/sse?topic=hist`, { headers: { 'last-event-id': '0-0' } });
  t.equal(await resumed.open(), 200);
  const live = 300;
  for (let i = kept; i < kept + live; i += 50)
    await Promise.all(Array.from({ length: 50 }, (_, j) => pub.publishAsync('hist', payload(i + j), { qos: 1 })));
  await until(() => resumed.events.length >= kept + live, 30_000, 'history and live messages');
  t.same(
    resumed.events.map((e) => Number(e.data.split(':')[0])),
    Array.from({ length: kept + live }, (_, i) => i),
    'all of the history, then the live messages, once each',
  );
  t.equal(resumed.connections, 1);
  t.equal(await metric(b.httpPort!, 'mqprobe_sse_clients_dropped_total'), 0, 'never dropped');
});

t.test(
  'bearer token from the deprecated http_sse_token_file (the anonymous user and its ACL); bad filters are refused; internals are never streamed',
  async (t) => {
    const dir = tempDir();
    const token = 's3cr3t-token-value-9f8e';
    writeFileSync(join(dir, 'token'), `${token}\n`);
    writeFileSync(join(dir, 'acl'), 'topic readwrite open/#\n');
    const b = await startTestBroker(t, conf(`http_sse_token_file ${join(dir, 'token')}\nacl_file ${join(dir, 'acl')}\n`), { dir });
    const base = `http://127.0.0.1:${b.httpPort}/sse`;
    const none = await fetch(base);
    t.equal(none.status, 401);
    t.match(none.headers.get('www-authenticate'), /^Basic realm="mqprobe".*, Bearer realm="mqprobe"$/, 'both challenges');
    t.equal((await fetch(base, { headers: { authorization: 'Bearer wrong' } })).status, 401);
    t.equal(
      (await fetch(base, { headers: { authorization: `Basic ${token}` } })).status,
      400,
      'the token as Basic credentials is not base64 of user:password',
    );
    t.equal((await fetch(`${base}?topic=a/%23/b`, { headers: { authorization: `Bearer ${token}` } })).status, 400, 'invalid filter');
    t.equal((await fetch(`${base}?topic=a%2B`, { headers: { authorization: `Bearer ${token}` } })).status, 400, 'wildcard inside a level');

    const internals = await fetch(`${base}?topic=%23&topic=%24mqprobe/%23`, { headers: { authorization: `Bearer ${token}` } });
    t.equal(internals.status, 403, 'an internal filter is refused, as an MQTT SUBSCRIBE to it gets 0x80');
    t.same(await internals.json(), { error: 'the ACL refuses topic filter "$mqprobe/#" to the anonymous user' });
    t.equal(
      (await fetch(`${base}?topic=closed/%23`, { headers: { authorization: `Bearer ${token}` } })).status,
      403,
      'the token reads as the anonymous user: its ACL has no closed/#',
    );
    const byHeader = new SseClient(t, `${base}?topic=%23`, { headers: { authorization: `Bearer ${token}` } });
    t.equal(await byHeader.open(), 200);
    const byQuery = new SseClient(t, `${base}?topic=open/%23&access_token=${token}`);
    t.equal(await byQuery.open(), 200);
    const pub = await connectClient(t, b.mqttUrl);
    await pub.publishAsync('closed/x', 'denied by the ACL', { qos: 1 });
    await pub.publishAsync('open/x', 'fine', { qos: 1 });
    await until(() => byHeader.events.length >= 1 && byQuery.events.length === 1);
    await new Promise((r) => setTimeout(r, 100));
    t.same(
      byHeader.events.map((e) => e.event),
      ['open/x'],
      'a denied publish (rerouted internally) never reaches SSE',
    );
    const log = readFileSync(b.logFile, 'utf8');
    t.notOk(log.includes(token), 'the token never appears in the log');
    t.match(log, /http_sse_token_file is deprecated: its token now acts as the anonymous user/, 'the change of meaning is logged');
    t.equal(await metric(b.httpPort!, 'mqprobe_sse_requests_refused_total{reason="unauthorized"}'), 2);
    t.equal(await metric(b.httpPort!, 'mqprobe_sse_requests_refused_total{reason="forbidden-filter"}'), 2);
  },
);

t.test('an unreadable or empty token file stops the broker at config load, naming file, line and key', async (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, 'empty'), '  \n');
  await t.rejects(
    startTestBroker(t, conf(`http_sse_token_file ${join(dir, 'missing')}\n`)),
    /mqprobe\.conf:4: http_sse_token_file: cannot read .*missing \(ENOENT\)/,
  );
  await t.rejects(
    startTestBroker(t, conf(`http_sse_token_file ${join(dir, 'empty')}\n`)),
    /mqprobe\.conf:4: http_sse_token_file: .*empty is empty/,
  );
});
