import t from 'tap';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { freePort, spawnCli, startTestBroker, tempDir, waitForPort } from '../../helpers/broker.js';
import { startMosquitto } from '../../helpers/mosquitto.js';
import { collect, connectClient, connectCollecting, until } from '../../helpers/mqtt.js';

// mqprobe refuses client publishes to $SYS (bridges included; docs/bridges.md), so bridges into mqprobe notify
// on a topic of their own. mqprobe killed -9 while its bridge's remote (a real Mosquitto 2.0.11) is down, and mqprobe as the remote of
// another mqprobe and of a Mosquitto bridge.

const HEAD = 'listener 0 127.0.0.1\nallow_anonymous true\n';

t.test(
  'SIGKILL of mqprobe (persistence true) while the remote is down: the 1,000 waiting QoS 1 messages go out after the restart',
  async (t) => {
    const remoteDir = tempDir('mqprobe-bridge-remote-');
    chmodSync(remoteDir, 0o777);
    const remote = await startMosquitto(t, `allow_anonymous true\npersistence true\npersistence_location ${remoteDir}/\n`, {
      dir: remoteDir,
    });
    const sink = await connectClient(t, remote.url, { clientId: 'sink', clean: false });
    await sink.subscribeAsync('q/#', { qos: 1 });
    await sink.endAsync();
    await remote.stop('SIGTERM');

    const dir = tempDir('mqprobe-bridge-state-');
    const port = await freePort();
    const file = join(dir, 'mqprobe.conf');
    writeFileSync(
      file,
      `listener ${port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\npersistence_location ${dir}\nautosave_interval 1\n` +
        `connection up\naddress 127.0.0.1:${remote.port}\nremote_clientid up\nrestart_timeout 1\ntopic q/# out 1\n`,
    );
    const first = spawnCli(t, ['-c', file]);
    await waitForPort(port);
    const pub = await connectClient(t, `mqtt://127.0.0.1:${port}`);
    for (let i = 0; i < 1000; i++) await pub.publishAsync('q/x', `m${i}`, { qos: 1 });
    await pub.endAsync();
    await new Promise((r) => setTimeout(r, 2500)); // two autosaves
    first.child.kill('SIGKILL');
    await first.exited;

    spawnCli(t, ['-c', file]);
    await waitForPort(port);
    await remote.start();
    const { got } = await connectCollecting(t, remote.url, { clientId: 'sink', clean: false });
    await until(() => got.length >= 1000, 40_000, '1,000 messages at the remote');
    await new Promise((r) => setTimeout(r, 300));
    const payloads = got.map((m) => m.payload.toString());
    t.same(
      [...new Set(payloads)],
      Array.from({ length: 1000 }, (_, i) => `m${i}`),
      'every message, in order',
    );
    t.ok(
      payloads.length - new Set(payloads).size <= 1,
      `at most the one in flight at the kill is sent twice (QoS 1): ${payloads.length - 1000} duplicate(s)`,
    );
  },
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
