import t from 'tap';
import { startTestBroker, type Teardown } from '../helpers/broker.js';
import { connectClient, collect, until } from '../helpers/mqtt.js';
import { mosquittoAndMqprobe, startMosquitto } from '../helpers/mosquitto.js';

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`metric ${name} not found`);
  return Number(m[1]);
}

t.test('$SYS topics and /metrics report the load the test sent', async (t) => {
  const { mqttUrl, httpPort } = await startTestBroker(
    t,
    'listener 0 127.0.0.1\nallow_anonymous true\nsys_interval 1\nhttp_listener 0 127.0.0.1\n',
  );
  const subs = await Promise.all([1, 2].map((i) => connectClient(t, mqttUrl, { clientId: `sub${i}` })));
  const counts = subs.map((s) => collect(s));
  for (const s of subs) await s.subscribeAsync('load/#', { qos: 0 });
  const pub = await connectClient(t, mqttUrl, { clientId: 'pub' });
  const N = 250;
  for (let i = 0; i < N; i++) pub.publish('load/x', Buffer.alloc(100), { qos: 0 });
  await until(() => counts.every((c) => c.length === N), 10_000, 'all deliveries');

  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  t.equal(metric(text, 'mqprobe_publish_received_total'), N, 'publishes received = what the test sent');
  t.equal(metric(text, 'mqprobe_publish_sent_total'), 2 * N, 'publishes sent = N to each of 2 subscribers');
  t.equal(metric(text, 'mqprobe_clients_connected'), 3);
  t.ok(metric(text, 'mqprobe_bytes_received_total') >= N * 100, 'bytes received cover the payloads');

  const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
  t.equal(health.status, 200);
  t.match(await health.json(), { status: 'ok', clients: 3 });

  const watcher = await connectClient(t, mqttUrl, { clientId: 'sys-watcher' });
  const sys = new Map<string, string>();
  watcher.on('message', (topic, payload) => sys.set(topic, payload.toString()));
  await watcher.subscribeAsync('$SYS/broker/#');
  // the retained values from before the load arrive first; the next sys_interval tick brings the counts
  await until(
    () => sys.get('$SYS/broker/publish/messages/received') === String(N) && sys.get('$SYS/broker/clients/connected') === '4',
    5000,
    '$SYS topics after the load',
  );
  t.match(sys.get('$SYS/broker/version'), /^mqprobe version \d+\.\d+\.\d+/);
  t.match(sys.get('$SYS/broker/uptime'), /^\d+ seconds$/);
  t.ok(sys.has('$SYS/broker/load/publish/received/1min'), 'load averages are published');
  for (const name of [
    'clients/total',
    'clients/maximum',
    'clients/disconnected',
    'messages/received',
    'messages/sent',
    'bytes/received',
    'bytes/sent',
    'retained messages/count',
    'subscriptions/count',
    'publish/messages/dropped',
    'load/bytes/received/5min',
    'load/connections/15min',
    'heap/current',
    'heap/maximum',
    'clients/expired',
  ]) {
    t.ok(sys.has(`$SYS/broker/${name}`), `$SYS/broker/${name} is published`);
  }
});

t.test('a # subscriber gets no retained $SYS topics, a $SYS/# subscriber gets them (MQTT-4.7.2-1)', async (t) => {
  const { mqttUrl } = await startTestBroker(t, 'listener 0 127.0.0.1\nallow_anonymous true\nsys_interval 1\n');
  const keeper = await connectClient(t, mqttUrl, { clientId: 'keeper' });
  await keeper.publishAsync('plain/retained', 'kept', { qos: 1, retain: true });
  const all = await connectClient(t, mqttUrl, { clientId: 'all' });
  const allGot = collect(all);
  await all.subscribeAsync('#', { qos: 1 });
  const sys = await connectClient(t, mqttUrl, { clientId: 'sys' });
  const sysGot = collect(sys);
  await sys.subscribeAsync('$SYS/#', { qos: 0 });
  await until(() => sysGot.some((m) => m.topic === '$SYS/broker/version') && allGot.length > 0, 5000, 'retained deliveries');
  await new Promise((r) => setTimeout(r, 1500)); // one more sys_interval: live $SYS updates must not reach # either
  t.same(
    allGot.map((m) => m.topic),
    ['plain/retained'],
    '# got only the ordinary retained topic',
  );
  t.ok(
    sysGot.every((m) => m.topic.startsWith('$SYS/')),
    '$SYS/# got $SYS topics',
  );
});

/** A $SYS/# watcher while a client with a recognisable id connects, subscribes and leaves: what topics and client ids it saw. */
async function sysWatch(t: Teardown, url: string): Promise<{ foreign: string[]; leaks: string[] }> {
  const watcher = await connectClient(t, url, { clientId: 'sys-watch' });
  const got = collect(watcher);
  await watcher.subscribeAsync('$SYS/#', { qos: 0 });
  const secret = await connectClient(t, url, { clientId: 'secret-device-7' });
  await secret.subscribeAsync('private/feed/#');
  await secret.unsubscribeAsync('private/feed/#');
  await secret.endAsync();
  await new Promise((r) => setTimeout(r, 1500));
  return {
    foreign: [...new Set(got.map((m) => m.topic).filter((topic) => !topic.startsWith('$SYS/broker/')))],
    leaks: got.filter((m) => /secret-device-7|private\/feed/.test(m.payload.toString())).map((m) => m.topic),
  };
}

t.test('mqprobe: $SYS/# carries no client ids or subscriptions (only $SYS/broker/…)', async (t) => {
  const { mqttUrl } = await startTestBroker(t, 'listener 0 127.0.0.1\nallow_anonymous true\nsys_interval 1\n');
  t.same(await sysWatch(t, mqttUrl), { foreign: [], leaks: [] });
});

t.test('Mosquitto 2.0.11: the same', async (t) => {
  const m = await startMosquitto(t, 'allow_anonymous true\nsys_interval 1\n');
  t.same(await sysWatch(t, m.url), { foreign: [], leaks: [] });
});

t.test('$SYS/broker/clients/expired counts sessions ended by their expiry, as Mosquitto 2.0.11 does', async (t) => {
  for (const [name, url] of await mosquittoAndMqprobe(t, 'allow_anonymous true\nsys_interval 1\n')) {
    const session = await connectClient(t, url, {
      clientId: 'expiring',
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 1 },
    });
    await session.subscribeAsync('x', { qos: 1 });
    await session.endAsync();
    const watcher = await connectClient(t, url, { clientId: 'expired-watcher' });
    let value = '';
    watcher.on('message', (_topic, payload) => (value = payload.toString()));
    await watcher.subscribeAsync('$SYS/broker/clients/expired');
    await until(() => value === '1', 15_000, `${name}: clients/expired 1`).catch(() => undefined);
    t.equal(value, '1', `${name}: one session expired`);
  }
});
