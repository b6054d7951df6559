import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClientHandle } from '../../broker/engine/client.js';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { connectClient, collect, until } from '../helpers/mqtt.js';
import { defineProbeBeat } from './frame-beat.js';
import { SseClient } from './sse-client.js';

const BASE = 'listener 0 127.0.0.1\nallow_anonymous true\nhttp_listener 0 127.0.0.1\n';
const conf = (dir: string, beats: string) => `${BASE}persistence_location ${dir}\n${beats}`;

async function metric(httpPort: number, line: RegExp): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const m = text.split('\n').find((l) => line.test(l));
  return m === undefined ? undefined : Number(m.split(' ').pop());
}

t.test('records are published by the internal client $beat/<name>, which acl_file does not govern; readers stay governed', async (t) => {
  const dir = tempDir();
  // no grant at all for $beat/aclprobe; user "reader" may read only beats/aclprobe/ok/#
  writeFileSync(join(dir, 'acl'), 'user reader\ntopic read beats/aclprobe/ok/#\n');
  let emitNow: (() => Promise<void>) | undefined;
  defineProbeBeat(t, 'aclprobe', {
    start(ctx) {
      emitNow = async () => {
        await ctx.emit({ subtopic: 'no/1', data: { n: 1 } });
        await ctx.emit({ subtopic: 'ok/1', data: { n: 2 } });
      };
    },
  });
  const b = await startTestBroker(t, conf(dir, `acl_file ${join(dir, 'acl')}\nbeat aclprobe\n`));
  const denied: { clientId: string; topic: string }[] = [];
  const received: { clientId: string; topic: string }[] = [];
  b.broker.probe.on('publish-denied', (client: ClientHandle, p) => denied.push({ clientId: client.id, topic: p.topic }));
  b.broker.aedes.on('publish', (p, client) => {
    if (client && p.topic.startsWith('beats/')) received.push({ clientId: client.id, topic: p.topic });
  });
  const sub = await connectClient(t, b.mqttUrl, { username: 'reader' });
  const got = collect(sub);
  await sub.subscribeAsync('beats/#');
  await until(() => emitNow !== undefined);
  await emitNow!();
  await until(() => received.length === 2 && got.length === 1, 5000, 'both publishes and one delivery');
  t.same(
    received,
    [
      { clientId: '$beat/aclprobe', topic: 'beats/aclprobe/no/1' },
      { clientId: '$beat/aclprobe', topic: 'beats/aclprobe/ok/1' },
    ],
    'both writes were accepted from $beat/aclprobe although the ACL grants it nothing',
  );
  t.same(denied, [], 'nothing was denied');
  t.same(
    got.map((m) => m.topic),
    ['beats/aclprobe/ok/1'],
    'the reader got only what its own ACL lets it read',
  );
});

t.test('emit reaches MQTT subscribers and SSE clients; a network client cannot pose as $beat/<name>', async (t) => {
  const dir = tempDir();
  let emitNow: (() => Promise<void>) | undefined;
  const probe = defineProbeBeat(t, 'pub', {
    start(ctx) {
      emitNow = async () => {
        await ctx.emit({ subtopic: 'a/b', data: { text: 'hé', n: 1, list: [1, 2], nested: { x: true } } });
      };
    },
  });
  const b = await startTestBroker(t, conf(dir, 'beat pub\n'));
  const sub = await connectClient(t, b.mqttUrl);
  const got = collect(sub);
  await sub.subscribeAsync('beats/#');
  const sse = new SseClient(t, `http://127.0.0.1:${b.httpPort}/sse?topic=beats/pub/%23`);
  t.equal(await sse.open(), 200);
  await until(() => emitNow !== undefined);
  await emitNow!();
  await until(() => got.length === 1 && sse.events.length === 1, 5000, 'MQTT and SSE delivery');
  t.equal(got[0].topic, 'beats/pub/a/b');
  t.same(
    JSON.parse(got[0].payload.toString()),
    { text: 'hé', n: 1, list: [1, 2], nested: { x: true } },
    'raw format: the typed data as JSON',
  );
  t.equal(sse.events[0].event, 'beats/pub/a/b');
  t.same(JSON.parse(sse.events[0].data), { text: 'hé', n: 1, list: [1, 2], nested: { x: true } });

  await t.rejects(
    connectClient(t, b.mqttUrl, { clientId: '$beat/pub' }),
    /Identifier rejected|bad-client-id|Not authorized|refused/i,
    'a network client with a $ client id is refused',
  );
  t.equal(await metric(b.httpPort!, /^mqprobe_beat_records_total\{beat="pub"\}/), 1, 'records counted');
  t.equal(probe.contexts[0].stateDir, dir, 'ctx.stateDir is persistence_location');
});

t.test('ngsi and ngsi-ld formats; beat_output sse keeps records off MQTT and beat_output mqtt keeps them off SSE', async (t) => {
  const dir = tempDir();
  const emitters: (() => Promise<void>)[] = [];
  const record = {
    subtopic: 'dev/1',
    data: { temperature: 21.5, count: 3, big: 2 ** 40, on: true, tags: ['a', 'b'], id: 'x', 'dotted.name': 'y' },
    entity: { type: 'Sensor', id: 'dev 1' },
    time: Date.UTC(2024, 0, 2, 3, 4, 5, 6),
  };
  for (const name of ['fmtngsi', 'fmtld', 'onlysse', 'onlymqtt']) {
    defineProbeBeat(t, name, { start: (ctx) => void emitters.push(() => ctx.emit(record)) });
  }
  const b = await startTestBroker(
    t,
    conf(
      dir,
      'beat fmtngsi\nbeat_format ngsi\nbeat fmtld\nbeat_format ngsi-ld\nbeat onlysse\nbeat_output sse\nbeat onlymqtt\nbeat_output mqtt\n',
    ),
  );
  const sub = await connectClient(t, b.mqttUrl);
  const got = collect(sub);
  await sub.subscribeAsync('beats/#');
  const sse = new SseClient(t, `http://127.0.0.1:${b.httpPort}/sse?topic=beats/%23`);
  await sse.open();
  await until(() => emitters.length === 4);
  for (const e of emitters) await e();
  await until(() => got.length === 3 && sse.events.length === 3, 5000, 'deliveries');
  t.same(
    got.map((m) => m.topic).sort(),
    ['beats/fmtld/dev/1', 'beats/fmtngsi/dev/1', 'beats/onlymqtt/dev/1'],
    'beat_output sse is not published to MQTT',
  );
  t.same(
    sse.events.map((e) => e.event).sort(),
    ['beats/fmtld/dev/1', 'beats/fmtngsi/dev/1', 'beats/onlysse/dev/1'],
    'beat_output mqtt is not streamed on /sse',
  );

  const v2 = JSON.parse(got.find((m) => m.topic === 'beats/fmtngsi/dev/1')!.payload.toString());
  const ti = { TimeInstant: { type: 'DateTime', value: '2024-01-02T03:04:05.006Z' } };
  t.same(v2, {
    id: 'urn:ngsi-ld:Sensor:dev_1',
    type: 'Sensor',
    temperature: { type: 'Double', value: 21.5, metadata: ti },
    count: { type: 'Int', value: 3, metadata: ti },
    big: { type: 'Long', value: 2 ** 40, metadata: ti },
    on: { type: 'Boolean', value: true, metadata: ti },
    tags: { type: 'List', value: ['a', 'b'], metadata: { baseType: { type: 'Text', value: 'String' }, ...ti } },
    src_id: { type: 'String', value: 'x', metadata: ti },
    dotted_name: { type: 'String', value: 'y', metadata: ti },
  });
  const ld = JSON.parse(got.find((m) => m.topic === 'beats/fmtld/dev/1')!.payload.toString());
  t.same(ld, {
    id: 'urn:ngsi-ld:Sensor:dev_1',
    type: 'Sensor',
    temperature: { type: 'Property', value: 21.5, observedAt: '2024-01-02T03:04:05.006Z' },
    count: { type: 'Property', value: 3, observedAt: '2024-01-02T03:04:05.006Z' },
    big: { type: 'Property', value: 2 ** 40, observedAt: '2024-01-02T03:04:05.006Z' },
    on: { type: 'Property', value: true, observedAt: '2024-01-02T03:04:05.006Z' },
    tags: { type: 'Property', value: ['a', 'b'], observedAt: '2024-01-02T03:04:05.006Z' },
    src_id: { type: 'Property', value: 'x', observedAt: '2024-01-02T03:04:05.006Z' },
    dotted_name: { type: 'Property', value: 'y', observedAt: '2024-01-02T03:04:05.006Z' },
    '@context': 'https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld',
  });
});

t.test('a beat that fails is restarted with growing delays and the broker keeps serving', async (t) => {
  const dir = tempDir();
  const times: number[] = [];
  const probe = defineProbeBeat(t, 'flaky', {
    create(attempt) {
      times.push(Date.now());
      if (attempt === 2) throw new Error('factory broke');
    },
    start(ctx, attempt) {
      if (attempt === 1) throw new Error('upstream refused');
      if (attempt === 3) setTimeout(() => ctx.fail(new Error('upstream went away')), 50);
    },
  });
  const b = await startTestBroker(t, conf(dir, 'beat flaky\n'));
  await until(() => probe.attempts === 4, 15_000, 'four attempts');
  t.ok(times[1] - times[0] >= 900, `1st restart after ~1 s (${times[1] - times[0]} ms)`);
  t.ok(times[2] - times[1] >= 1900, `2nd restart after ~2 s (${times[2] - times[1]} ms)`);
  t.ok(times[3] - times[2] >= 3900, `3rd restart after ~4 s (${times[3] - times[2]} ms)`);
  t.equal(probe.stops, 2, 'stop() ran for each bridge that had started or was starting (attempts 1 and 3)');
  await until(() => probe.starts === 3);
  t.equal(await metric(b.httpPort!, /^mqprobe_beat_restarts_total\{beat="flaky"\}/), 3);
  t.equal(await metric(b.httpPort!, /^mqprobe_beat_up\{beat="flaky"\}/), 1);
  const c = await connectClient(t, b.mqttUrl);
  await c.publishAsync('still/alive', 'yes', { qos: 1 });
  t.match(
    await import('node:fs').then((fs) => fs.readFileSync(b.logFile, 'utf8')),
    /beat flaky failed: upstream refused; restarting in 1000 ms/,
  );
  await t.rejects(probe.contexts[0].emit({ subtopic: 'x', data: {} }), /beat flaky is stopped/, 'the context of a failed attempt is dead');
});

t.test('HTTP routes under /beats/<name>, re-registered after a restart; subscribe sees the publisher', async (t) => {
  const dir = tempDir();
  const seen: { topic: string; payload: string; clientId?: string; username?: string }[] = [];
  const probe = defineProbeBeat(t, 'web', {
    async start(ctx, attempt) {
      await ctx.http((app) => {
        app.post('/echo', async (req) => ({ attempt, body: req.body }));
      });
      await ctx.subscribe('cmd/+', (topic, payload, from) => seen.push({ topic, payload: payload.toString(), ...from }));
    },
  });
  const b = await startTestBroker(t, conf(dir, 'beat web\n'));
  const base = `http://127.0.0.1:${b.httpPort}`;
  await until(() => probe.starts === 1);
  const post = (path: string) => fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
  const r1 = await post('/beats/web/echo');
  t.equal(r1.status, 200);
  t.same(await r1.json(), { attempt: 1, body: { a: 1 } });
  t.equal((await post('/beats/nobody/echo')).status, 404, 'unknown beat');
  t.equal((await post('/beats/web/nothing')).status, 404, 'unknown route of a running beat');
  t.equal((await fetch(`${base}/healthz`)).status, 200, 'the broker routes are untouched');

  const c = await connectClient(t, b.mqttUrl, { clientId: 'commander', username: 'alice' });
  await c.publishAsync('cmd/go', 'now', { qos: 1 });
  await c.publishAsync('other/go', 'ignored', { qos: 1 });
  await until(() => seen.length === 1);
  t.same(seen, [{ topic: 'cmd/go', payload: 'now', clientId: 'commander', username: 'alice' }]);

  probe.contexts[0].fail(new Error('test restart'));
  await until(() => probe.starts === 2, 5000, 'the restart');
  const r2 = await post('/beats/web/echo');
  t.same(await r2.json(), { attempt: 2, body: { a: 1 } }, 'the restarted beat serves its routes again');
  await c.publishAsync('cmd/again', 'x', { qos: 1 });
  await until(() => seen.length === 2);
  t.equal(seen.length, 2, "the failed attempt's subscription was removed (no duplicate delivery)");
});

t.test('ctx.http without http_listener rejects clearly; the beat is retried, the broker runs', async (t) => {
  const dir = tempDir();
  const errors: string[] = [];
  const probe = defineProbeBeat(t, 'nohttp', {
    async start(ctx) {
      await ctx
        .http(() => undefined)
        .catch((err: Error) => {
          errors.push(err.message);
          throw err;
        });
    },
  });
  await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous true\npersistence_location ${dir}\nbeat nohttp\n`);
  await until(() => errors.length === 1);
  t.match(errors[0], /beat nohttp serves HTTP routes: configure http_listener/);
  t.equal(probe.attempts, 1);
});

t.test('a burst of 2,000 records emitted at once reaches a subscriber whole and in order', async (t) => {
  const dir = tempDir();
  let emitNow: (() => Promise<void>) | undefined;
  defineProbeBeat(t, 'burst', {
    start(ctx) {
      emitNow = async () => {
        await Promise.all(Array.from({ length: 2000 }, (_, i) => ctx.emit({ subtopic: 'x', data: { i, pad: 'y'.repeat(300) } })));
      };
    },
  });
  const b = await startTestBroker(t, conf(dir, 'beat burst\n'));
  const sub = await connectClient(t, b.mqttUrl);
  const got = collect(sub);
  await sub.subscribeAsync('beats/#');
  await until(() => emitNow !== undefined);
  await emitNow!();
  await until(() => got.length === 2000, 10_000, 'all 2,000 records');
  t.same(
    got.map((m) => JSON.parse(m.payload.toString()).i),
    Array.from({ length: 2000 }, (_, i) => i),
    'every record once, in order',
  );
  t.equal((await metric(b.httpPort!, /^mqprobe_beat_restarts_total\{beat="burst"\}/)) ?? 0, 0, 'the internal connection never broke');
});

t.test(
  'records emitted over many ticks from before the internal client is connected reach the broker once each, in emit order',
  async (t) => {
    const dir = tempDir();
    const captured = join(dir, 'capture.ndjson');
    const n = 3000;
    let emitted: Promise<void> | undefined;
    defineProbeBeat(t, 'ticks', {
      start(ctx) {
        // the first tick's 1,500 run before CONNACK (mqtt.js holds them and sends them over several ticks), later ones go straight to the broker
        emitted = (async () => {
          const all: Promise<void>[] = [];
          for (let i = 0; i < n; i++) {
            all.push(ctx.emit({ subtopic: 'x', data: { i, pad: 'p'.repeat(200) } }));
            if (i >= 1499 && i % 100 === 99) await new Promise((r) => setImmediate(r));
          }
          await Promise.all(all);
        })();
      },
    });
    await startTestBroker(t, conf(dir, `capture_sink file ${captured}\ncapture_payload full\nbeat ticks\n`), { dir });
    await until(() => emitted !== undefined);
    await emitted;
    // the broker's own record of what it received, in the order it received it
    const received = () =>
      readFileSync(captured, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"publish-received"') && l.includes('$beat/ticks'))
        .map((l) => JSON.parse((JSON.parse(l) as { mqtt: { payload: string } }).mqtt.payload).i as number);
    await until(() => existsSync(captured) && received().length >= n, 10_000, `${n} publishes captured`);
    t.same(
      received(),
      Array.from({ length: n }, (_, i) => i),
      'every record once, in emit order',
    );
  },
);

t.test(
  'ctx.records: a beat follows another beat’s records as emitted, whatever its format and output; a throwing follower is restarted',
  async (t) => {
    const dir = tempDir();
    const got: { subtopic: string; data: Record<string, unknown> }[] = [];
    const source = defineProbeBeat(t, 'src');
    const follower = defineProbeBeat(t, 'follower', {
      start(ctx, attempt) {
        ctx.records('src', (r) => {
          if (r.data.boom === true && attempt === 1) throw new Error('follower choked');
          got.push({ subtopic: r.subtopic, data: r.data });
        });
      },
    });
    // the source writes NGSI-LD to SSE only: the follower still gets the typed record
    await startTestBroker(t, conf(dir, 'beat src\nbeat_format ngsi-ld\nbeat_output sse\nbeat follower\n'));
    await until(() => source.starts === 1 && follower.starts === 1, 10_000, 'both beats');
    await source.contexts[0].emit({ subtopic: 'a/b', data: { n: 1 } });
    t.same(got, [{ subtopic: 'a/b', data: { n: 1 } }], 'delivered inside emit, as emitted');
    await source.contexts[0].emit({ subtopic: 'a/b', data: { boom: true } });
    await until(() => follower.starts === 2, 10_000, 'the follower restarted');
    t.equal(source.stops, 0, 'the emitting beat is not affected');
    await source.contexts[0].emit({ subtopic: 'a/c', data: { n: 2 } });
    t.same(got.at(-1), { subtopic: 'a/c', data: { n: 2 } }, 'the restarted follower follows again');
    t.equal(got.filter((g) => g.subtopic === 'a/c').length, 1, 'the failed attempt no longer follows');
    t.throws(() => follower.contexts[0].records('src', () => undefined), /beat follower is stopped/, 'a dead context follows nothing');
  },
);
