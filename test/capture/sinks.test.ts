/** The other sinks (mqtt, stdout, file rotation), capture_format hicap, capture_events, and the subscribe/emit API. */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../app/config.js';
import { freePort, spawnCli, startTestBroker, tempDir, waitForPort } from '../helpers/broker.js';
import { collect, connectClient, until } from '../helpers/mqtt.js';
import { readEvents } from './session.js';

t.test('capture_sink mqtt: events arrive on the topic and are never captured again, even with capture_events all', async (t) => {
  const b = await startTestBroker(
    t,
    'listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink mqtt $SYS/broker/capture\ncapture_events all\n',
  );
  const watcher = await connectClient(t, b.mqttUrl, { clientId: 'watcher' });
  const got = collect(watcher);
  await watcher.subscribeAsync('$SYS/broker/capture', { qos: 0 });
  const c = await connectClient(t, b.mqttUrl, { clientId: 'pub' });
  await c.publishAsync('a/b', 'x', { qos: 1 });
  await until(() => got.some((m) => m.payload.toString().includes('"a/b"')), 5000, 'the publish event on the capture topic');
  await new Promise((r) => setTimeout(r, 300));
  const events = got.map((m) => JSON.parse(m.payload.toString()));
  t.ok(
    events.some((e) => e.event.action === 'subscription-granted' && e.mqtt.topic === '$SYS/broker/capture'),
    'the subscription itself is captured',
  );
  t.notOk(
    events.some((e) => e.mqtt?.topic === '$SYS/broker/capture' && /publish/.test(e.event.action)),
    'no event about a capture event',
  );
  t.ok(
    events.some((e) => e.event.action === 'publish-delivered' && e.mqtt.topic === 'a/b') === false,
    'nobody subscribed to a/b: no delivery',
  );
  const seqs = events.map((e) => e.event.sequence);
  t.same(
    seqs,
    [...seqs].sort((x, y) => x - y),
    'in order',
  );
  const before = b.broker.capture.stats().recorded;
  await new Promise((r) => setTimeout(r, 500));
  t.equal(b.broker.capture.stats().recorded, before, 'no feedback loop: nothing recorded while idle');
});

t.test('capture_events all: PINGREQ, acknowledgements and deliveries; a list records only what it names', async (t) => {
  const dir = tempDir();
  const all = join(dir, 'all.ndjson');
  const b = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink file ${all}\ncapture_events all\n`, { dir });
  const sub = await connectClient(t, b.mqttUrl, { clientId: 'sub', keepalive: 1 });
  await sub.subscribeAsync('x/#', { qos: 1 });
  const pub = await connectClient(t, b.mqttUrl, { clientId: 'pub' });
  await pub.publishAsync('x/1', 'hello', { qos: 1 });
  await new Promise((r) => setTimeout(r, 1600)); // one keepalive ping
  await sub.endAsync();
  await pub.endAsync();
  await b.broker.close();
  const actions = readEvents(all).map((e) => e.event.action);
  for (const a of ['ping-received', 'publish-acknowledged', 'publish-delivered']) t.ok(actions.includes(a), `${a} captured`);
  t.match(
    readEvents(all).find((e) => e.event.action === 'publish-delivered'),
    { mqtt: { client_id: 'sub', topic: 'x/1', qos: 1, payload_size: 5 } },
  );

  const dir2 = tempDir();
  const some = join(dir2, 'some.ndjson');
  const b2 = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink file ${some}\ncapture_events client-connected,publish-received\n`,
    { dir: dir2 },
  );
  const c = await connectClient(t, b2.mqttUrl, { clientId: 'one' });
  await c.publishAsync('y', 'v', { qos: 1 });
  await c.endAsync();
  await b2.broker.close();
  const events = readEvents(some);
  t.same([...new Set(events.map((e) => e.event.action))].sort(), ['client-connected', 'publish-received']);
  t.same(
    events.map((e) => e.event.sequence),
    events.map((_, i) => i + 1),
    'sequence counts recorded events only: no gaps',
  );
});

t.test('bad capture keys are ConfigErrors naming file:line', async (t) => {
  const dir = tempDir();
  const cases: [string, RegExp][] = [
    ['capture_events client-connected,pingreq', /mqprobe\.conf:2: capture_events: unknown event\.action "pingreq"/],
    ['capture_sink logstash http://x:1', /mqprobe\.conf:2: capture_sink: expected a tcp or tls URL/],
    ['capture_sink mqtt a/#', /:2: capture_sink: the capture topic must not contain wildcards/],
    ['capture_payload truncate 0', /:2: capture_payload: expected an integer in 1\.\./],
    ['capture_format xml', /:2: capture_format: expected one of ecs\|hicap/],
  ];
  for (const [line, re] of cases) {
    const f = join(dir, 'mqprobe.conf');
    writeFileSync(f, `listener 0 127.0.0.1\n${line}\n`);
    t.throws(() => loadConfig(f), re, line);
  }
});

t.test('capture_format hicap: the Flex4Apps field names', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'hicap.ndjson');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink file ${out}\ncapture_format hicap\ncapture_payload full\n`,
    { dir },
  );
  const c = await connectClient(t, b.mqttUrl, { clientId: 'dev42' });
  await c.subscribeAsync('home/#');
  await c.publishAsync('home/t1', '21.5', { qos: 1 });
  await c.endAsync();
  await b.broker.close();
  const lines = readEvents(out);
  const by = (a: string) => lines.filter((l) => l.mqtt.action === a);
  t.same(by('STARTUP')[0], { mqtt: { action: 'STARTUP', listeners: [{ bind: '127.0.0.1', port: b.port }] } });
  const ts = { tsUTC: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(GMT\)$/, tsLocal: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \(.+\)$/ };
  t.match(by('CONNECT')[0], { mqtt: { success: true, state: 'ACCEPTED', clientIP: '127.0.0.1', port: b.port, clientID: 'dev42', ...ts } });
  t.match(by('SUBSCRIBE')[0], { mqtt: { topic: 'home/#', clientID: 'dev42', port: b.port } });
  t.match(by('PUBLISH')[0], {
    mqtt: {
      topic: 'home/t1',
      payload: Buffer.from('21.5').toString('base64'),
      clientID: 'dev42',
      clientIP: '127.0.0.1',
      port: b.port,
      ...ts,
    },
  });
  t.same(Object.keys(by('PUBLISH')[0].mqtt), ['action', 'topic', 'clientIP', 'port', 'clientID', 'tsUTC', 'tsLocal', 'payload']);
  t.match(by('DISCONNECT')[0], { mqtt: { clientID: 'dev42' } });
  t.same(by('SHUTDOWN')[0], { mqtt: { action: 'SHUTDOWN' } });
  t.notOk(
    lines.some((l) => !l.mqtt || Object.keys(l).length !== 1),
    'everything under "mqtt"',
  );
});

t.test('hicap refusal: success false, errCode and the CONNACK reason name', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'hicap.ndjson');
  const b = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous false\ncapture_sink file ${out}\ncapture_format hicap\n`, {
    dir,
  });
  await connectClient(t, b.mqttUrl, { clientId: 'anon' }).catch(() => undefined);
  await b.broker.close();
  t.match(
    readEvents(out).find((l) => l.mqtt.action === 'CONNECT'),
    { mqtt: { success: false, state: 'REFUSED', errCode: 5, reason: 'CONNACK_REFUSED_NOT_AUTHORIZED', clientID: 'anon' } },
  );
});

t.test('file sink rotation: size-bounded files, the oldest removed, nothing lost in the kept ones', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'cap', 'c.ndjson');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink file ${out}\ncapture_file_max_bytes 20000\ncapture_file_max_files 2\n`,
    { dir },
  );
  const c = await connectClient(t, b.mqttUrl, { clientId: 'rot' });
  for (let i = 0; i < 200; i++) {
    c.publish('r/t', `m${i}`);
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5));
  }
  await c.endAsync();
  await b.broker.close();
  t.ok(existsSync(`${out}.1`) && existsSync(`${out}.2`), 'two rotated files');
  t.notOk(existsSync(`${out}.3`), 'no third');
  const files = [`${out}.2`, `${out}.1`, out];
  for (const f of files) t.ok(readFileSync(f).length <= 20000, `${f} within capture_file_max_bytes`);
  const seqs = files.flatMap((f) => readEvents(f).map((e) => e.event.sequence));
  t.same(
    seqs,
    Array.from({ length: seqs.length }, (_, i) => seqs[0] + i),
    'oldest to newest: one contiguous run',
  );
  t.equal(seqs.at(-1), b.broker.capture.stats().recorded, 'up to the last event');
});

t.test('capture_sink stdout through the real CLI', async (t) => {
  const dir = tempDir();
  const port = await freePort();
  const conf = join(dir, 'm.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\ncapture_sink stdout\n`);
  const p = spawnCli(t, ['-c', conf]);
  let out = '';
  p.child.stdout!.on('data', (d) => (out += d));
  await waitForPort(port);
  const c = await connectClient(t, `mqtt://127.0.0.1:${port}`, { clientId: 'cli' });
  await c.publishAsync('s/t', 'x', { qos: 1 });
  await c.endAsync();
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0);
  const events = out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  t.equal(events[0].event.action, 'broker-starting');
  t.equal(events.at(-1).event.action, 'broker-stopped');
  t.ok(events.some((e) => e.event.action === 'publish-received' && e.mqtt.topic === 's/t'));
  t.same(
    events.map((e) => e.event.sequence),
    events.map((_, i) => i + 1),
  );
});

t.test('subscribe() sees every event; emit() adds alerts with identity and sequence; no sink needed', async (t) => {
  const b = await startTestBroker(t);
  const seen: Record<string, any>[] = [];
  const off = b.broker.capture.subscribe((e) => seen.push(e));
  const c = await connectClient(t, b.mqttUrl, { clientId: 'obs' });
  await c.publishAsync('o/t', 'x', { qos: 1 });
  const alert = b.broker.capture.emit({
    '@timestamp': '2026-01-01T00:00:00.000Z',
    message: 'rule x: something',
    event: { kind: 'alert', action: 'alert-raised', severity: 50 },
    rule: { name: 'x' },
  });
  await until(() => seen.some((e) => e.event.action === 'alert-raised'), 2000, 'the alert');
  off();
  await c.endAsync();
  t.ok(
    seen.some((e) => e.event.action === 'publish-received'),
    'broker events reach the subscriber without a sink',
  );
  const a = seen.find((e) => e.event.action === 'alert-raised')!;
  t.equal(a, alert, 'the recorded event is returned by emit()');
  t.match(a, {
    '@timestamp': '2026-01-01T00:00:00.000Z',
    message: 'rule x: something',
    ecs: { version: String },
    event: { kind: 'alert', dataset: 'mqtt.capture', severity: 50, id: String, sequence: Number },
    observer: { product: 'mqprobe' },
    service: { id: b.broker.info.id },
    rule: { name: 'x' },
  });
  const seqs = seen.map((e) => e.event.sequence);
  t.same(
    seqs,
    seqs.map((_, i) => seqs[0] + i),
    'the subscriber sees a contiguous sequence',
  );
  await b.broker.close();
  t.equal(b.broker.capture.emit({ event: { action: 'late' } }), undefined, 'nothing recorded after stop');
});

t.test('capture_sink stdout: a reader that goes away (EPIPE) does not stop the broker', async (t) => {
  const dir = tempDir();
  const port = await freePort();
  const conf = join(dir, 'm.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\ncapture_sink stdout\n`);
  const p = spawnCli(t, ['-c', conf]);
  await waitForPort(port);
  p.child.stdout!.destroy();
  const c = await connectClient(t, `mqtt://127.0.0.1:${port}`, { clientId: 'epipe' });
  for (let i = 0; i < 50; i++) await c.publishAsync('e/t', `x${i}`, { qos: 1 });
  await c.endAsync();
  const again = await connectClient(t, `mqtt://127.0.0.1:${port}`, { clientId: 'still-there' });
  t.ok(again.connected, 'the broker still serves');
  await again.endAsync();
  t.equal(p.child.exitCode, null, 'the process is alive');
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0, 'a clean exit');
});

t.test('file sink: tail -F follows it across rotations and sees every event once, in order', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'tailed.ndjson');
  writeFileSync(out, '');
  const tail = spawn('tail', ['-F', '-n', '+1', '-s', '0.05', out], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => tail.kill('SIGKILL'));
  let seen = '';
  tail.stdout.on('data', (d) => (seen += d));
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink file ${out}\ncapture_file_max_bytes 30000\ncapture_file_max_files 3\n`,
    { dir },
  );
  const c = await connectClient(t, b.mqttUrl, { clientId: 'tailed' });
  for (let i = 0; i < 150; i++) {
    await c.publishAsync('tail/t', `m${i}`, { qos: 1 });
    // tail -F polls every 50 ms: give it time to see each rotation before the next
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 200));
  }
  await c.endAsync();
  await b.broker.close();
  const n = b.broker.capture.stats().recorded;
  t.ok(existsSync(`${out}.1`), 'the file rotated');
  await until(() => seen.split('\n').filter(Boolean).length >= n, 10_000, `${n} lines through tail -F`);
  const seqs = seen
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { event: { sequence: number } }).event.sequence);
  t.same(
    seqs,
    Array.from({ length: n }, (_, i) => i + 1),
    'every event once, in order',
  );
});
