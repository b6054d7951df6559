/**
 * capture_sink logstash against a real json_lines receiver: syslog-ng (Logstash itself cannot run
 * here). Plain TCP, TLS with a client certificate, an outage under load with the disk spool, and a
 * spool that fills up.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { startTestBroker, tempDir, type TestBroker } from '../helpers/broker.js';
import { makePki } from '../helpers/certs.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { PASSWORDS, readEvents, scriptedSession, securityConf } from './session.js';
import { startReceiver } from './syslog-ng.js';

const parse = (lines: string[]) => lines.map((l) => JSON.parse(l) as Record<string, any>);

/** Distinct events by event.id, in order of first arrival, and how many copies were extra. */
function distinct(lines: string[]): { events: Record<string, any>[]; copies: number } {
  const seen = new Set<string>();
  const events: Record<string, any>[] = [];
  for (const e of parse(lines)) {
    if (seen.has(e.event.id)) continue;
    seen.add(e.event.id);
    events.push(e);
  }
  return { events, copies: lines.length - events.length };
}

async function stopped(b: TestBroker): Promise<number> {
  await b.broker.close();
  return b.broker.capture.stats().recorded;
}

/** Publishes `n` QoS 0 messages in bursts, yielding between bursts. */
async function load(c: MqttClient, n: number, burst = 100, pauseMs = 5): Promise<void> {
  for (let i = 0; i < n; i += burst) {
    for (let j = i; j < Math.min(n, i + burst); j++) c.publish(`load/${j % 7}`, `m${j}`);
    await new Promise((r) => setTimeout(r, pauseMs));
  }
}

t.test('plain TCP: every event of a scripted session arrives, byte for byte as in the file sink', async (t) => {
  const rx = await startReceiver(t);
  const dir = tempDir();
  const file = join(dir, 'events.ndjson');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\n${securityConf(dir)}capture_sink logstash tcp://127.0.0.1:${rx.port}\ncapture_sink file ${file}\n`,
    { dir },
  );
  await scriptedSession(t, b.mqttUrl, b.port);
  const n = await stopped(b);
  await until(() => rx.lines().length >= n, 10_000, `${n} events at the receiver`);
  const reference = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  t.same(rx.lines(), reference, 'the receiver got exactly the lines of the file sink');
  t.same(
    parse(rx.lines()).map((e) => e.event.sequence),
    reference.map((_, i) => i + 1),
    'sequence 1..N',
  );
  const received = readFileSync(rx.out, 'utf8') + readFileSync(b.logFile, 'utf8');
  for (const pw of PASSWORDS) t.equal(received.indexOf(pw), -1, 'no fixture password at the receiver or in the log');
});

t.test('TLS with a client certificate (capture_tls_cafile/certfile/keyfile)', async (t) => {
  const pki = makePki();
  const rx = await startReceiver(t, { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert });
  const client = pki.client('mqprobe-capture');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink logstash tls://localhost:${rx.port}\ncapture_tls_cafile ${pki.caCert}\ncapture_tls_certfile ${client.cert}\ncapture_tls_keyfile ${client.key}\n`,
  );
  const c = await connectClient(t, b.mqttUrl, { clientId: 'tls-pub' });
  for (let i = 0; i < 50; i++) await c.publishAsync('tls/t', `v${i}`);
  await c.endAsync();
  const n = await stopped(b);
  await until(() => rx.lines().length >= n, 10_000, `${n} events over TLS`);
  const events = parse(rx.lines());
  t.same(
    events.map((e) => e.event.sequence),
    events.map((_, i) => i + 1),
    'all events, in order',
  );
  t.equal(events.filter((e) => e.event.action === 'publish-received').length, 50, 'every publish');
  const key = readFileSync(client.key, 'utf8').split('\n')[1];
  t.equal(readFileSync(b.logFile, 'utf8').indexOf(key), -1, 'no private key content in the log');
});

t.test('TLS: a receiver whose certificate the CA does not sign gets nothing, and the events wait in the spool', async (t) => {
  const pki = makePki();
  const other = makePki();
  const rx = await startReceiver(t, { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert });
  const client = pki.client('mqprobe-capture');
  const dir = tempDir();
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink logstash tls://localhost:${rx.port}\ncapture_tls_cafile ${other.caCert}\ncapture_tls_certfile ${client.cert}\ncapture_tls_keyfile ${client.key}\ncapture_spool_dir ${join(dir, 'spool')}\ncapture_queue_max 10\n`,
    { dir },
  );
  const c = await connectClient(t, b.mqttUrl, { clientId: 'tls-pub' });
  for (let i = 0; i < 30; i++) await c.publishAsync('tls/t', `v${i}`);
  await until(() => b.broker.capture.stats().sinks[0].spoolBytes > 0, 10_000, 'events in the spool');
  const s = b.broker.capture.stats().sinks[0];
  t.ok(s.down && s.failures > 0, 'the sink reports the failed handshakes');
  t.equal(rx.lines().length, 0, 'the receiver got nothing');
  t.match(readFileSync(b.logFile, 'utf8'), /cannot connect to tls:\/\/localhost/, 'the log says why');
});

t.test('outage under load: the receiver stops and restarts; every sequence number arrives, in order', async (t) => {
  const rx = await startReceiver(t);
  const dir = tempDir();
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink logstash tcp://127.0.0.1:${rx.port}\ncapture_spool_dir ${join(dir, 'spool')}\ncapture_queue_max 500\n`,
    { dir },
  );
  const c = await connectClient(t, b.mqttUrl, { clientId: 'loader' });
  // 6000 publishes over about 6 s; the receiver is down for 3 s in the middle
  const during = load(c, 6000, 100, 100);
  await new Promise((r) => setTimeout(r, 1500));
  await rx.stop();
  await new Promise((r) => setTimeout(r, 3000));
  const spooled = b.broker.capture.stats().sinks[0].spoolBytes;
  await rx.start();
  await during;
  await until(() => b.broker.capture.stats().sinks[0].spoolBytes === 0, 30_000, 'the spool to drain');
  await load(c, 3000);
  await c.endAsync();
  const n = await stopped(b);
  t.ok(spooled > 0, `events went to the disk spool during the outage (${spooled} bytes)`);
  await until(() => distinct(rx.lines()).events.length >= n, 30_000, `${n} distinct events at the receiver`).catch((err: Error) => {
    const got = new Set(distinct(rx.lines()).events.map((e) => e.event.sequence));
    const missing = [];
    for (let s = 1; s <= n; s++) if (!got.has(s)) missing.push(s);
    t.comment(
      readFileSync(b.logFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('capture'))
        .join('\n'),
    );
    t.comment(
      `missing ${missing.length}: ${missing.slice(0, 20).join(',')} … ${missing.slice(-5).join(',')}; stats ${JSON.stringify(b.broker.capture.stats())}`,
    );
    throw err;
  });
  const { events, copies } = distinct(rx.lines());
  t.same(
    events.map((e) => e.event.sequence),
    events.map((_, i) => i + 1),
    `all ${n} sequence numbers, first arrivals in order`,
  );
  t.equal(events.filter((e) => e.event.action === 'publish-received').length, 9000, 'every publish');
  t.equal(events.filter((e) => e.event.action === 'capture-dropped').length, 0, 'nothing dropped');
  t.comment(`${copies} events arrived twice (resent after the broken connection; a receiver drops them by event.id)`);
  t.ok(copies <= 2000, 'copies only from the resend window');
});

t.test('spool full: drops are counted exactly and reported as capture-dropped once the receiver is back', async (t) => {
  const rx = await startReceiver(t);
  await rx.stop();
  const dir = tempDir();
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\nhttp_listener 0 127.0.0.1\ncapture_sink logstash tcp://127.0.0.1:${rx.port}\ncapture_spool_dir ${join(dir, 'spool')}\ncapture_spool_max_bytes 65536\ncapture_queue_max 50\n`,
    { dir },
  );
  const c = await connectClient(t, b.mqttUrl, { clientId: 'loader' });
  await load(c, 2000, 100, 5);
  await until(() => b.broker.capture.stats().sinks[0].dropped > 0, 10_000, 'drops');
  await rx.start();
  await until(() => b.broker.capture.stats().sinks[0].spoolBytes === 0, 30_000, 'the spool to drain');
  await c.publishAsync('after/recovery', 'x');
  await until(() => rx.lines().some((l) => l.includes('"capture-dropped"')), 15_000, 'the capture-dropped event');
  const metrics = await (await fetch(`http://127.0.0.1:${b.broker.httpPort}/metrics`)).text();
  await c.endAsync();
  const n = await stopped(b);
  await until(() => distinct(rx.lines()).events.some((e) => e.event.action === 'broker-stopped'), 15_000, 'broker-stopped');

  const { events, copies } = distinct(rx.lines());
  t.equal(copies, 0, 'nothing arrived twice (the connection never broke)');
  const dropped = events.filter((e) => e.event.action === 'capture-dropped');
  t.equal(dropped.length, 1, 'one drop episode, one capture-dropped event');
  const d = dropped[0];
  t.match(d, {
    event: { kind: 'metric', reason: 'spool-full' },
    mqprobe: { capture: { sink: `logstash:tcp://127.0.0.1:${rx.port}`, dropped: Number } },
  });
  const { first_sequence: first, last_sequence: last, dropped: count } = d.mqprobe.capture;
  t.equal(count, last - first + 1, 'the dropped events are one contiguous run');
  const got = new Set(events.map((e) => e.event.sequence));
  const missing = [];
  for (let s = 1; s <= n; s++) if (!got.has(s)) missing.push(s);
  t.same(
    missing,
    Array.from({ length: count }, (_, i) => first + i),
    'exactly the reported sequence numbers are missing',
  );
  t.equal(b.broker.capture.stats().sinks[0].dropped, count, 'the sink counted the same');
  const m = /mqprobe_capture_dropped_total\{sink="logstash:tcp:\/\/127\.0\.0\.1:\d+",reason="spool-full"\} (\d+)/.exec(metrics);
  t.equal(Number(m?.[1]), count, '/metrics counted the same');
  t.ok(readEvents(rx.out).length > 0);
});

t.test('shutdown while the receiver is down: the queue is spooled, and the next start replays it first', async (t) => {
  const rx = await startReceiver(t);
  await rx.stop();
  const dir = tempDir();
  const conf = `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink logstash tcp://127.0.0.1:${rx.port}\ncapture_spool_dir ${join(dir, 'spool')}\n`;
  const first = await startTestBroker(t, conf, { dir: tempDir() });
  const c = await connectClient(t, first.mqttUrl, { clientId: 'before' });
  for (let i = 0; i < 20; i++) await c.publishAsync('s/t', `v${i}`, { qos: 1 });
  await c.endAsync();
  const n1 = await stopped(first);
  t.equal(first.broker.capture.stats().sinks[0].dropped, 0, 'nothing dropped at shutdown');
  t.match(readFileSync(first.logFile, 'utf8'), /spooled for the next start/);

  await rx.start();
  const second = await startTestBroker(t, conf, { dir: tempDir() });
  const c2 = await connectClient(t, second.mqttUrl, { clientId: 'after' });
  await c2.publishAsync('s/t', 'new', { qos: 1 });
  await c2.endAsync();
  const n2 = await stopped(second);
  await until(() => rx.lines().length >= n1 + n2, 15_000, `${n1} + ${n2} events`);
  const events = parse(rx.lines());
  const byInstance = (id: string) => events.filter((e) => e.service.id === id).map((e) => e.event.sequence);
  t.same(
    byInstance(first.broker.info.id),
    Array.from({ length: n1 }, (_, i) => i + 1),
    'the first instance complete, broker-stopped included',
  );
  t.same(
    byInstance(second.broker.info.id),
    Array.from({ length: n2 }, (_, i) => i + 1),
    'the second instance complete',
  );
  t.equal(events[n1 - 1].event.action, 'broker-stopped', 'the old events came first');
});

t.test('a receiver that accepts and never reads: events go to the spool, publishing goes on, stop() keeps its deadline', async (t) => {
  const stalled = net.createServer((s) => s.pause());
  await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => stalled.close());
  const port = (stalled.address() as net.AddressInfo).port;
  const dir = tempDir();
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink logstash tcp://127.0.0.1:${port}\ncapture_spool_dir ${join(dir, 'spool')}\ncapture_queue_max 10\ncapture_payload full\n`,
    { dir },
  );
  const c = await connectClient(t, b.mqttUrl, { clientId: 'fast' });
  const big = Buffer.alloc(20_000, 'z');
  // about 28 MB of events: more than the kernel's socket buffers can hold
  for (let i = 0; i < 1000; i++) await c.publishAsync('big/t', big, { qos: 1 });
  await until(() => b.broker.capture.stats().sinks[0].spoolBytes > 1_000_000, 10_000, 'the spool to take over');
  await c.endAsync();
  const t0 = Date.now();
  await b.broker.close();
  t.ok(Date.now() - t0 < 9000, `close returned after ${Date.now() - t0} ms (5 s deadline, 1 s grace)`);
  const s = b.broker.capture.stats().sinks[0];
  t.equal(s.dropped, 0, 'nothing dropped');
  t.ok(s.spoolBytes > 5_000_000, `the events wait on disk (${s.spoolBytes} bytes)`);
});
