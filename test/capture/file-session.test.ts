import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { PASSWORDS, readEvents, scriptedSession, securityConf } from './session.js';

const DEFAULT_ACTIONS = [
  'broker-starting',
  'connection-opened',
  'client-connected',
  'subscription-granted',
  'subscription-denied',
  'publish-received',
  'publish-denied',
  'unsubscribed',
  'client-disconnected',
  'connection-refused',
  'will-published',
  'protocol-error',
  'keepalive-timeout',
  'broker-stopped',
];

t.test('capture_sink file: a scripted session gives every documented event, sequence 1..N, no secrets', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'capture', 'events.ndjson');
  const conf = `listener 0 127.0.0.1\n${securityConf(dir)}capture_sink file ${out}\ncapture_payload truncate 16\n`;
  const b = await startTestBroker(t, conf, { dir });
  await scriptedSession(t, b.mqttUrl, b.port);
  await until(() => b.broker.capture.stats().sinks[0].queued === 0, 5000, 'the file sink to catch up');
  await b.broker.close();

  const events = readEvents(out);
  const actions = new Set(events.map((e) => e.event.action));
  for (const a of DEFAULT_ACTIONS) t.ok(actions.has(a), `event.action ${a} captured`);
  t.notOk(actions.has('ping-received'), 'high-volume actions are off by default');
  t.same(
    events.map((e) => e.event.sequence),
    events.map((_, i) => i + 1),
    'event.sequence runs 1..N without a gap',
  );
  t.equal(new Set(events.map((e) => e.event.id)).size, events.length, 'event.id is unique');

  for (const e of events) {
    t.match(
      e,
      {
        '@timestamp': /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
        message: String,
        ecs: { version: String },
        event: { kind: /^(event|metric)$/, action: String, dataset: 'mqtt.capture', id: String, sequence: Number },
        observer: { product: 'mqprobe', name: String, version: String },
        service: { type: 'mqtt', id: b.broker.info.id },
      },
      `shape of ${e.event.action} #${e.event.sequence}`,
    );
    t.ok(e.message.length > 10, 'a readable message');
  }

  const find = (action: string, pred: (e: Record<string, any>) => boolean = () => true) =>
    events.find((e) => e.event.action === action && pred(e));
  t.match(
    find('client-connected', (e) => e.mqtt.client_id === 'alice-1'),
    {
      user: { name: 'alice' },
      source: { ip: '127.0.0.1', port: Number },
      destination: { port: b.port },
      network: { protocol: 'mqtt', transport: 'tcp' },
      mqtt: { protocol_version: 4, clean_session: true, keepalive: 30, reason_code: 0 },
      event: { outcome: 'success', category: ['authentication', 'session'] },
    },
  );
  t.match(
    find('publish-received', (e) => e.mqtt.topic === 'sensors/t1'),
    {
      mqtt: {
        client_id: 'alice-1',
        qos: 1,
        retain: false,
        dup: false,
        payload_size: 4,
        payload: '21.5',
        payload_encoding: 'utf8',
        message_id: Number,
      },
    },
  );
  t.match(
    find('publish-received', (e) => e.mqtt.topic === 'sensors/retained'),
    { mqtt: { retain: true, payload_size: 4, payload: Buffer.from([0, 1, 2, 255]).toString('base64'), payload_encoding: 'base64' } },
  );
  t.match(find('publish-denied'), { mqtt: { topic: 'secret/x', qos: 1, payload_size: 4 }, event: { outcome: 'failure' } });
  t.notOk(
    find('publish-received', (e) => String(e.mqtt.topic).startsWith('$mqprobe')),
    'the reroute of a denied publish is not a received publish',
  );
  t.match(find('subscription-granted'), {
    mqtt: { topic: 'sensors/#', qos: 1, subscriptions: [{ topic: 'sensors/#', qos: 1, granted_qos: 1 }] },
  });
  t.match(find('subscription-denied'), { mqtt: { topic: 'secret/#', subscriptions: [{ topic: 'secret/#', qos: 0, granted_qos: 128 }] } });
  t.match(find('unsubscribed'), { mqtt: { topic: 'sensors/#', client_id: 'alice-1' } });
  t.match(
    find('client-disconnected', (e) => e.mqtt.client_id === 'alice-1'),
    { event: { reason: 'client-disconnect', outcome: 'success' } },
  );
  t.match(
    find('connection-refused', (e) => e.mqtt.client_id === 'c-bob'),
    { event: { reason: 'bad-credentials', outcome: 'failure' }, user: { name: 'bob' }, mqtt: { reason_code: 5 } },
  );
  t.match(
    find('connection-refused', (e) => e.mqtt.client_id === 'c-mallory'),
    { event: { reason: 'unknown-user' }, user: { name: 'mallory' } },
  );
  t.match(
    find('client-disconnected', (e) => e.mqtt.client_id === 'bob-1'),
    { event: { reason: 'socket-closed' } },
  );
  t.match(find('will-published'), {
    mqtt: { client_id: 'bob-1', topic: 'will/bob', will: { topic: 'will/bob', qos: 0, retain: false, payload_size: 8 } },
  });
  t.match(find('protocol-error'), { error: { message: String }, source: { ip: '127.0.0.1' } });
  t.match(find('keepalive-timeout'), { mqtt: { client_id: 'sleepy', keepalive: 1 } });
  t.match(
    find('client-disconnected', (e) => e.mqtt.client_id === 'sleepy'),
    { event: { reason: 'keepalive-timeout' } },
  );
  t.match(find('broker-starting'), { mqprobe: { listeners: [{ port: b.port }] } });
  t.equal(events.at(-1)!.event.action, 'broker-stopped', 'broker-stopped is the last event');

  // not a byte of any fixture password in the capture file, its folder, or the broker's log
  const written = [out, b.logFile, ...readdirSync(join(dir, 'capture')).map((f) => join(dir, 'capture', f))].map((f) => readFileSync(f));
  for (const pw of PASSWORDS) {
    for (const bytes of written) t.equal(bytes.indexOf(pw), -1, `password ${JSON.stringify(pw.slice(0, 3))}… appears nowhere`);
    t.equal(readFileSync(out, 'utf8').indexOf(Buffer.from(pw).toString('base64')), -1, 'not even base64-encoded');
  }
});

t.test(
  'a clean session ending: its remaining subscriptions are unsubscribed events marked session-ended, after the disconnect',
  async (t) => {
    const dir = tempDir();
    const out = join(dir, 'events.ndjson');
    const b = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink file ${out}\n`, { dir });
    const clean = await connectClient(t, b.mqttUrl, { clientId: 'ends-clean', clean: true });
    await clean.subscribeAsync(['kept/+', 'dropped/#']);
    await clean.unsubscribeAsync('dropped/#');
    await clean.endAsync();
    const persistent = await connectClient(t, b.mqttUrl, { clientId: 'stays', clean: false });
    await persistent.subscribeAsync('stays/#', { qos: 1 });
    await persistent.endAsync();
    await until(() => b.broker.capture.stats().sinks[0].queued === 0, 5000, 'the file sink to catch up');
    await b.broker.close();

    const events = readEvents(out).filter((e) => e.mqtt?.client_id === 'ends-clean');
    const order = events.map(
      (e) => `${e.event.action}${e.event.reason ? `:${e.event.reason}` : ''}${e.mqtt.topic ? ` ${e.mqtt.topic}` : ''}`,
    );
    const at = (s: string) => order.indexOf(s);
    t.ok(at('unsubscribed dropped/#') >= 0, 'the UNSUBSCRIBE: no reason');
    t.ok(at('unsubscribed dropped/#') < at('client-disconnected:client-disconnect'), 'before the disconnect');
    t.ok(
      at('unsubscribed:session-ended kept/+') > at('client-disconnected:client-disconnect'),
      `the rest ends with the session (${order.join(', ')})`,
    );
    const ended = events.find((e) => e.event.reason === 'session-ended')!;
    t.equal(ended.message, 'Subscription of client "ends-clean" to "kept/+" ended with its session');
    t.notOk(
      readEvents(out).some((e) => e.mqtt?.client_id === 'stays' && e.event.action === 'unsubscribed'),
      'a persistent session keeps its subscriptions: no unsubscribed event',
    );
  },
);
