/**
 * capture_sink beats against a real Lumberjack v2 receiver: the server of Elastic's go-lumber
 * (test/peers/lumberjack, the library Beats test with), built with `go build`. Logstash's beats
 * input speaks the same protocol; Logstash itself cannot run here.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { startTestBroker, tempDir, type TestBroker } from '../helpers/broker.js';
import { startLumberjack } from '../helpers/lumberjack.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { PASSWORDS, scriptedSession, securityConf } from './session.js';

async function stopped(b: TestBroker): Promise<number> {
  await b.broker.close();
  return b.broker.capture.stats().recorded;
}

/** First arrivals by event.id, and how many arrived more than once. */
function distinct(events: Record<string, any>[]): { events: Record<string, any>[]; copies: number } {
  const seen = new Set<string>();
  const first = events.filter((e) => !seen.has(e.event.id) && seen.add(e.event.id));
  return { events: first, copies: events.length - first.length };
}

t.test('go-lumber receiver: every event of a scripted session, acknowledged, same JSON as the file sink plus @metadata', async (t) => {
  const rx = await startLumberjack(t);
  const dir = tempDir();
  const file = join(dir, 'events.ndjson');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\n${securityConf(dir)}capture_sink beats tcp://127.0.0.1:${rx.port}\ncapture_sink file ${file}\n`,
    { dir },
  );
  await scriptedSession(t, b.mqttUrl, b.port);
  const n = await stopped(b);
  t.equal(rx.events().length, n, 'every event arrived before stop() returned (each window was acknowledged)');
  const reference = readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, any>);
  const got = rx.events().map(({ '@metadata': meta, ...rest }) => {
    t.match(meta, { beat: 'mqprobe', type: '_doc', version: String }, 'Filebeat-style @metadata');
    return rest;
  });
  t.same(got, reference, 'the same events as the file sink, in order');
  const s = b.broker.capture.stats().sinks.find((x) => x.name.startsWith('beats:'))!;
  t.match(s, { delivered: n, dropped: 0, failures: 0 });
  const received = JSON.stringify(rx.events()) + readFileSync(b.logFile, 'utf8');
  for (const pw of PASSWORDS) t.equal(received.indexOf(pw), -1, 'no fixture password at the receiver or in the log');
});

t.test('receiver stops acknowledging, then dies under load; a new one on the same port gets every sequence (at-least-once)', async (t) => {
  const first = await startLumberjack(t);
  const port = first.port;
  const dir = tempDir();
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink beats tcp://127.0.0.1:${port}\ncapture_spool_dir ${join(dir, 'spool')}\ncapture_queue_max 1000\n`,
    { dir },
  );
  const c = await connectClient(t, b.mqttUrl, { clientId: 'loader' });
  const load = async (from: number, n: number) => {
    for (let i = from; i < from + n; i += 100) {
      for (let j = i; j < i + 100; j++) c.publish(`load/${j % 7}`, `m${j}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  await load(0, 2000);
  first.hold();
  await load(2000, 4000);
  const beforeDeath = first.events().length;
  await first.die();
  await load(6000, 2000);
  const second = await startLumberjack(t, port);
  await load(8000, 2000);
  await c.endAsync();
  const n = await stopped(b);
  const all = [...first.events(), ...second.events()];
  const { events, copies } = distinct(all);
  t.same(
    events.map((e) => e.event.sequence).sort((x, y) => x - y),
    Array.from({ length: n }, (_, i) => i + 1),
    `all ${n} sequence numbers arrived`,
  );
  t.equal(events.filter((e) => e.event.action === 'publish-received').length, 10_000, 'every publish');
  t.equal(events.filter((e) => e.event.action === 'capture-dropped').length, 0, 'nothing dropped');
  t.ok(
    copies > 0,
    `the unacknowledged window was sent again (${copies} copies; the dead receiver had ${beforeDeath} events, part of them never acknowledged)`,
  );
  t.equal(b.broker.capture.stats().sinks[0].dropped, 0);
});

t.test(
  'hostile receiver: a frame that is not an ACK, or an ACK past the window, fails the connection and the window is sent again',
  async (t) => {
    for (const reply of [
      Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'),
      Buffer.from([0x32, 0x41, 0xff, 0xff, 0xff, 0xff]),
      Buffer.alloc(1 << 20, 0x41),
    ]) {
      let attempts = 0;
      const hostile = net.createServer((s) => {
        attempts++;
        s.once('data', () => s.write(reply));
        s.on('error', () => {});
      });
      await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', r));
      const port = (hostile.address() as net.AddressInfo).port;
      const b = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink beats tcp://127.0.0.1:${port}\n`);
      const c = await connectClient(t, b.mqttUrl, { clientId: 'p' });
      await c.publishAsync('x/y', 'z');
      await until(() => attempts >= 2, 10_000, 'a second attempt');
      const s = b.broker.capture.stats().sinks[0];
      t.ok(s.failures >= 1 && s.delivered === 0, `nothing counted as delivered (${s.failures} failures)`);
      t.match(
        readFileSync(b.logFile, 'utf8'),
        /Lumberjack v2 ACK frame|acknowledged sequence 4294967295/,
        'the log names the protocol error',
      );
      await c.endAsync();
      await b.broker.close();
      hostile.close();
    }
  },
);
