import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '../../broker/engine/vendor/aedes/aedes.js';
import type { ConnInfo } from '../../broker/probe.js';
import { EventFactory } from '../../capture/build.js';
import type { PayloadPolicy } from '../../capture/config.js';
import { Finisher } from '../../capture/finish.js';
import { publishReceived } from '../../capture/hooks.js';
import { BatchReader, type Batch } from '../../capture/offload/batch-reader.js';
import { BatchWriter } from '../../capture/offload/batch-writer.js';
import type { PublishFacts } from '../../capture/offload/tape.js';
import { lineWriter } from '../../capture/serialize.js';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { connectClient, until } from '../helpers/mqtt.js';

const info = { name: 'probe-host', id: 'b-1', version: '0.1.0' };
const idPrefix = 'b-1-';
const listener = { bind: '127.0.0.1' } as ConnInfo['listener'];
const conns: (ConnInfo | undefined)[] = [
  { listener, listenerPort: 1883, transport: 'tcp', remoteAddress: '::ffff:10.1.2.3', remotePort: 50123, openedAt: 1 },
  {
    listener,
    listenerPort: 8883,
    transport: 'tls',
    remoteAddress: '2001:db8::7',
    remotePort: 443,
    openedAt: 2,
    tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', subject: 'CN=dev "7"', issuer: 'CN=ca', serial: '0A' },
  },
  { listener, listenerPort: 8080, transport: 'ws', remoteAddress: '127.0.0.1', remotePort: 1, openedAt: 3 },
  { listener: {} as ConnInfo['listener'], listenerPort: 0, transport: 'internal', openedAt: 4 },
  undefined,
];
const topics = ['a/b', '', 'ünï/cödé/中文/🚀', 'ctl\u0001\u001f"\\/\u2028', 'x'.repeat(4000)];
const payloads = [
  Buffer.alloc(0),
  Buffer.from('hello'),
  Buffer.from('é'.repeat(20)),
  Buffer.from([0xff, 0x00, 0xfe, 0x80]),
  Buffer.alloc(70_000, 'z'),
];
const policies: PayloadPolicy[] = [
  { mode: 'off' },
  { mode: 'full' },
  { mode: 'truncate', bytes: 5 },
  { mode: 'truncate', bytes: 39 },
  { mode: 'truncate', bytes: 4 },
];

/** The line the broker's thread writes for this publish (hook, pipeline numbering, flush). */
function onBrokerThread(
  f: EventFactory,
  fin: Finisher,
  format: 'ecs' | 'hicap',
  c: Client,
  conn: ConnInfo | undefined,
  user: string | undefined,
  p: PublishFacts,
  payload: Buffer,
  policy: PayloadPolicy,
  seq: number,
  ms: number,
) {
  const e = publishReceived(f, c, conn, user, p, payload.length, policy.mode === 'off' ? undefined : payload);
  e.event.sequence = seq;
  e.event.id = idPrefix + seq;
  fin.finish(e, ms);
  return lineWriter(format)(e);
}

t.test(
  'a publish-received built by the capture thread from its facts is byte for byte the line the broker thread writes (ECS and HICAP, every payload policy)',
  async (t) => {
    let compared = 0;
    for (const format of ['ecs', 'hicap'] as const)
      for (const policy of policies) {
        const writer = new BatchWriter(policy);
        const reader = new BatchReader({ info, idPrefix }, { payload: policy, format });
        const f = new EventFactory(info);
        const fin = new Finisher(policy);
        const expected: (string | undefined)[] = [];
        let seq = 0;
        conns.forEach((conn, ci) => {
          for (const user of [undefined, 'alice', 'bö"b']) {
            const c = { id: `client-${ci}-${user ?? 'anon'} ✓` } as Client;
            topics.forEach((topic, ti) => {
              for (const payload of payloads) {
                const p: PublishFacts = { topic, qos: (ti % 3) as 0 | 1 | 2, retain: ti % 2 === 0, dup: ti === 3 };
                if (p.qos > 0) p.messageId = 65535 - ti;
                const ms = 1_790_000_000_000 + seq * 7;
                writer.publish(++seq, ms, c, conn, user, p, payload);
                expected.push(onBrokerThread(f, fin, format, c, conn, user, p, payload, policy, seq, ms));
              }
            });
          }
        });
        const got: (string | undefined)[] = [];
        reader.read(
          writer.take(writer.cut())!,
          (line) => got.push(line),
          () => t.fail('nothing is lost'),
        );
        t.equal(got.length, expected.length, `${format}, payload ${JSON.stringify(policy)}: every event`);
        for (let i = 0; i < expected.length; i++) {
          compared++;
          if (got[i] !== expected[i]) {
            t.equal(got[i], expected[i], `${format} ${JSON.stringify(policy)} event ${i + 1}`);
            break;
          }
        }
      }
    t.equal(compared, 2 * policies.length * conns.length * 3 * topics.length * payloads.length, `${compared} lines compared`);
  },
);

t.test(
  'a batch keeps event.sequence order across facts, lines, format-less and skipped events; events recorded after a cut go with the next batch',
  async (t) => {
    const writer = new BatchWriter({ mode: 'off' });
    const reader = new BatchReader({ info, idPrefix }, { payload: { mode: 'off' }, format: 'ecs' });
    const c = { id: 'c' } as Client;
    const p: PublishFacts = { topic: 't', qos: 0, retain: false, dup: false };
    writer.publish(1, 0, c, conns[0], undefined, p, Buffer.alloc(1));
    writer.marker(2);
    writer.marker(3);
    writer.skip(4);
    writer.marker(5);
    const cut = writer.cut();
    // recorded while the flush ran: no line yet
    writer.marker(6);
    writer.publish(7, 0, c, conns[0], undefined, p, Buffer.alloc(1));
    writer.line('{"line":2}', false);
    writer.line(undefined, false);
    writer.line('{"line":5}', true);
    const seen: string[] = [];
    const read = (b: Batch | undefined) =>
      reader.read(
        b!,
        (line, seq) => seen.push(`${seq}:${line === undefined ? '-' : line.startsWith('{"@timestamp"') ? 'publish' : line}`),
        (seq) => seen.push(`${seq}:lost`),
      );
    read(writer.take(cut));
    t.same(seen, ['1:publish', '2:{"line":2}', '3:-', '4:lost', '5:lost'], 'the first batch: up to the cut');
    writer.line('{"line":6}', false);
    read(writer.take(writer.cut()));
    t.same(seen.slice(5), ['6:{"line":6}', '7:publish'], 'the next batch: what came after the cut');
    t.equal(writer.take(writer.cut()), undefined, 'nothing left');
  },
);

t.test(
  'a client the broker forgot is forgotten by the thread; a record naming a client never described is an error, not a wrong line',
  async (t) => {
    const writer = new BatchWriter({ mode: 'off' });
    const reader = new BatchReader({ info, idPrefix }, { payload: { mode: 'off' }, format: 'ecs' });
    const p: PublishFacts = { topic: 't', qos: 0, retain: false, dup: false };
    writer.publish(1, 0, { id: 'gone' } as Client, conns[0], undefined, p, Buffer.alloc(0));
    const first = writer.take(writer.cut())!;
    t.equal(first.defs.length, 1, 'the client is described with its first record');
    reader.read(
      first,
      () => {},
      () => {},
    );
    // the broker's thread lets the thread forget client 1 (collected); a record that still named it would be a bug
    reader.read(
      { t: 'batch', tape: new ArrayBuffer(0), len: 0, records: 0, bytes: 0, lines: [], defs: [], forget: [1] },
      () => {},
      () => {},
    );
    const again = new BatchWriter({ mode: 'off' });
    again.publish(2, 0, { id: 'other' } as Client, conns[0], undefined, p, Buffer.alloc(0));
    const stale: Batch = { ...again.take(again.cut())!, defs: [] };
    t.throws(
      () =>
        reader.read(
          stale,
          () => {},
          () => {},
        ),
      /names client 1, which was never described/,
      'forgotten: an error',
    );
    const c = { id: 'same' } as Client;
    const w = new BatchWriter({ mode: 'off' });
    w.publish(1, 0, c, conns[0], undefined, p, Buffer.alloc(0));
    w.publish(2, 0, c, conns[0], undefined, p, Buffer.alloc(0));
    w.publish(3, 0, c, conns[0], 'now-authenticated', p, Buffer.alloc(0));
    t.same(
      w.take(w.cut())!.defs.map((d) => [d.id, d.user]),
      [
        [1, undefined],
        [2, 'now-authenticated'],
      ],
      'one description per client, a new one when its user changes',
    );
  },
);

t.test(
  'capture thread: 20,000 publishes of 4 clients reach the file sink once each and in order, counted on /metrics, its sink state in stats()',
  async (t) => {
    const dir = tempDir();
    const out = join(dir, 'events.ndjson');
    const b = await startTestBroker(
      t,
      `listener 0 127.0.0.1\nallow_anonymous true\nhttp_listener 0 127.0.0.1\ndetect off\ncapture_sink file ${out}\n`,
      { dir },
    );
    const clients = await Promise.all([0, 1, 2, 3].map((i) => connectClient(t, b.mqttUrl, { clientId: `flood-${i}` })));
    for (let i = 0; i < 5000; i++) for (const c of clients) c.publish(`flood/${c.options.clientId}`, `${i}`);
    await Promise.all(clients.map((c) => c.endAsync()));
    const published = () =>
      readFileSync(out, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { event: { action: string; sequence: number }; mqtt?: { client_id: string; topic: string } });
    // the four disconnections too: the count below compares the file with every event delivered
    const count = (action: string) => published().filter((e) => e.event.action === action).length;
    await until(
      () => count('publish-received') === 20_000 && count('client-disconnected') === 4,
      20_000,
      'every publish and disconnection in the file',
    );
    const events = published();
    t.same(
      events.map((e) => e.event.sequence),
      events.map((_, i) => events[0].event.sequence + i),
      'one contiguous sequence',
    );
    for (const c of ['flood-0', 'flood-3']) {
      const mine = events.filter((e) => e.event.action === 'publish-received' && e.mqtt?.client_id === c);
      t.equal(mine.length, 5000, `${c}: 5,000 publishes`);
      t.ok(
        mine.every((e) => e.mqtt?.topic === `flood/${c}`),
        `${c}: its topic on each`,
      );
    }
    await until(() => b.broker.capture.stats().sinks[0]?.delivered === events.length, 5000, 'the thread to report the deliveries');
    const metrics = await (await fetch(`http://127.0.0.1:${b.httpPort}/metrics`)).text();
    t.match(
      metrics,
      new RegExp(`mqprobe_capture_events_total\\{action="publish-received"\\} 20000`),
      '/metrics: 20,000 publish-received recorded',
    );
    t.match(
      metrics,
      new RegExp(`mqprobe_capture_delivered_total\\{sink="file:${out.replace(/[/.]/g, '\\$&')}"\\} ${events.length}`),
      '/metrics: every event delivered by the file sink',
    );
  },
);

t.test(
  'capture thread: a sink that cannot deliver is logged by the broker, and what it holds at shutdown is spooled for the next start',
  async (t) => {
    const dir = tempDir();
    const conf = `listener 0 127.0.0.1\nallow_anonymous true\ndetect off\ncapture_sink logstash tcp://127.0.0.1:9\ncapture_spool_dir ${join(dir, 'spool')}\n`;
    const b = await startTestBroker(t, conf, { dir });
    const c = await connectClient(t, b.mqttUrl, { clientId: 'spooled' });
    for (let i = 0; i < 100; i++) c.publish('s/t', 'x');
    await c.endAsync();
    await until(() => readFileSync(b.logFile, 'utf8').includes('cannot deliver; retrying'), 10_000, 'the retry warning in the broker log');
    const warning = readFileSync(b.logFile, 'utf8')
      .split('\n')
      .find((l) => l.includes('cannot deliver; retrying'))!;
    t.match(
      JSON.parse(warning),
      { level: 40, name: 'capture', sink: 'logstash:tcp://127.0.0.1:9' },
      'a warning of the broker logger, naming the sink',
    );
    await b.broker.close();
    const spooled = readFileSync(b.logFile, 'utf8');
    t.match(spooled, /still queued at shutdown were spooled for the next start/, 'the thread spooled what it held');
    t.equal(b.broker.capture.stats().sinks[0].dropped, 0, 'nothing dropped');
  },
);
