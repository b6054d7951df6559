import t from 'tap';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { startTestBroker, tempDir } from '../../helpers/broker.js';
import { sigkillWhileRemoteDown } from './outage.js';
import { startMosquitto } from '../../helpers/mosquitto.js';
import { collect, connectClient, until } from '../../helpers/mqtt.js';

// mqprobe refuses client publishes to $SYS (bridges included; docs/bridges.md), so bridges into mqprobe notify
// on a topic of their own. mqprobe killed -9 while its bridge's remote (a real Mosquitto 2.0.11) is down, and mqprobe as the remote of
// another mqprobe and of a Mosquitto bridge.

const HEAD = 'listener 0 127.0.0.1\nallow_anonymous true\n';

t.test('SIGKILL of mqprobe (persistence true) while the remote is down: the 1,000 waiting QoS 1 messages go out after the restart', (t) =>
  sigkillWhileRemoteDown(
    t,
    `persistence true\npersistence_location ${tempDir('mqprobe-bridge-state-')}\nautosave_interval 1\n`,
    () => new Promise((r) => setTimeout(r, 2500)), // two autosaves
  ),
);

t.test('mqprobe bridging to mqprobe, and Mosquitto bridging into mqprobe: prefixes both ways, no echo', async (t) => {
  const remote = await startTestBroker(t);
  const local = await startTestBroker(
    t,
    `${HEAD}connection mm\naddress 127.0.0.1:${remote.port}\nremote_clientid mm\nnotification_topic bridges/mm/state\ntopic # both 1 l/ r/\n`,
  );
  const mosq = await startMosquitto(
    t,
    `allow_anonymous true\nconnection into\naddress 127.0.0.1:${remote.port}\nremote_clientid into\nnotification_topic bridges/into/state\ntopic # both 1 ml/ mr/\n`,
  );
  const atRemote = collect(await connectClient(t, remote.mqttUrl));
  const atLocal = collect(await connectClient(t, local.mqttUrl));
  const atMosq = collect(await connectClient(t, mosq.url));
  for (const [c, url] of [
    [atRemote, remote.mqttUrl],
    [atLocal, local.mqttUrl],
    [atMosq, mosq.url],
  ] as const) {
    void c;
    const sub = await connectClient(t, url);
    await sub.subscribeAsync(['#'], { qos: 1 });
    sub.on('message', (topic, payload, packet) => c.push({ topic, payload, retain: packet.retain, qos: packet.qos }));
  }
  await until(
    () => ['mm', 'into'].every((id) => atRemote.some((m) => m.topic === `bridges/${id}/state` && m.payload.toString() === '1')),
    10_000,
    'both bridges connected to the mqprobe remote',
  );
  atRemote.length = atLocal.length = atMosq.length = 0;
  await (await connectClient(t, local.mqttUrl)).publishAsync('l/a', '1', { qos: 1 });
  await (await connectClient(t, mosq.url)).publishAsync('ml/b', '2', { qos: 1 });
  await (await connectClient(t, remote.mqttUrl)).publishAsync('r/c', '3', { qos: 1 });
  await (await connectClient(t, remote.mqttUrl)).publishAsync('mr/d', '4', { qos: 1 });
  // the notifications (retained) may still arrive at the bridging brokers' own subscribers: only data topics count
  const data = (g: { topic: string }[]) => g.filter((m) => !m.topic.startsWith('bridges/'));
  await until(() => data(atLocal).length >= 2 && data(atMosq).length >= 2 && data(atRemote).length >= 4, 10_000, 'every message');
  await new Promise((r) => setTimeout(r, 500));
  const topics = (g: { topic: string }[]) =>
    data(g)
      .map((m) => m.topic)
      .sort();
  t.same(topics(atRemote), ['mr/b', 'mr/d', 'r/a', 'r/c'], 'the mqprobe remote: each message once, mapped');
  t.same(topics(atLocal), ['l/a', 'l/c'], 'the bridging mqprobe: its own and the one that came in, once each');
  t.same(topics(atMosq), ['ml/b', 'ml/d'], 'the bridging Mosquitto: the same');
  t.match(
    mosq.output(),
    /Bridge into sending CONNECT[^]*Received CONNACK on connection local.into/,
    'Mosquitto bridged into mqprobe (the engine accepts the bridge bit)',
  );
});

t.test('a remote that answers garbage or closes mid-stream: one line per attempt, a backoff, the broker goes on', async (t) => {
  let accepted = 0;
  const garbage = net.createServer((s) => {
    accepted++;
    // odd attempts: bytes that are no CONNACK; even ones: a CONNACK cut in the middle, then a close
    s.end(accepted % 2 ? Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n') : Buffer.from([0x20, 0x02, 0x00]));
  });
  await new Promise<void>((r) => garbage.listen(0, '127.0.0.1', r));
  t.teardown(() => garbage.close());
  const port = (garbage.address() as net.AddressInfo).port;
  const mq = await startTestBroker(t, `${HEAD}connection junk\naddress 127.0.0.1:${port}\nrestart_timeout 1\ntopic # out 1\n`);
  await until(() => (readFileSync(mq.logFile, 'utf8').match(/bridge junk .*retrying in/g) ?? []).length >= 3, 10_000, 'three attempts');
  t.ok(accepted >= 3 && accepted <= 5, `attempts one restart_timeout apart, no busy loop (${accepted} connections)`);
  const c = await connectClient(t, mq.mqttUrl);
  await c.publishAsync('still/serving', 'yes', { qos: 1 });
  t.pass('the broker still takes publishes');
});
