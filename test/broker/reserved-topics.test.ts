/**
 * Topics clients may not write ($SYS, $share/ as a topic) and client ids with control characters,
 * against mqprobe and the real Mosquitto 2.0.11 side by side.
 */
import t from 'tap';
import net from 'node:net';
import { join } from 'node:path';
import mqttPacket from 'mqtt-packet';
import { startTestBroker, tempDir, type Teardown } from '../helpers/broker.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { connectClient, collect } from '../helpers/mqtt.js';
import { readEvents } from '../capture/session.js';

const RESERVED = ['$SYS/broker/version', '$SYS/broker/injected', '$SYS', '$share/g/plant/t', '$SYS/broker/connection/a/b/state'];
/** The one `$SYS` topic a client may write: a bridge's state notification (Mosquitto's acl__check_dollar). */
const BRIDGE_STATE = '$SYS/broker/connection/gw1/state';

/** A client publishes QoS 1 retained to each reserved topic (awaiting every PUBACK), then once to plant/t; what others received and were served. */
async function reservedWrites(
  t: Teardown,
  url: string,
): Promise<{ delivered: string[]; retained: string[]; writerConnected: boolean; sharedSubscription: string }> {
  const watcher = await connectClient(t, url, { clientId: 'watcher' });
  const seen = collect(watcher);
  await watcher.subscribeAsync(['$SYS/broker/injected', 'plant/t', '$SYS', '$SYS/broker/connection/#']);
  // both serve shared subscriptions (test/broker/shared-subscriptions.test.ts)
  const sharedSubscription = await watcher.subscribeAsync('$share/g/plant/t').then(
    () => 'granted',
    () => 'refused',
  );
  const writer = await connectClient(t, url, { clientId: 'writer' });
  for (const topic of RESERVED) await writer.publishAsync(topic, 'forged', { qos: 1, retain: true });
  await writer.publishAsync(BRIDGE_STATE, '1', { qos: 1, retain: true });
  await writer.publishAsync('plant/t', 'ok', { qos: 1 });
  await new Promise((r) => setTimeout(r, 300));
  const late = await connectClient(t, url, { clientId: 'late' });
  const served = collect(late);
  await late.subscribeAsync(['$SYS/broker/injected', '$SYS', '$SYS/broker/connection/#']);
  await new Promise((r) => setTimeout(r, 300));
  const text = (ms: { topic: string; payload: Buffer }[]) => ms.map((m) => `${m.topic}=${m.payload}`);
  return { delivered: text(seen), retained: text(served), writerConnected: writer.connected, sharedSubscription };
}

/** What both brokers must answer, and both grant the shared subscription. */
const EXPECTED = { delivered: [`${BRIDGE_STATE}=1`, 'plant/t=ok'], retained: [`${BRIDGE_STATE}=1`], writerConnected: true };

t.test(
  'mqprobe: client publishes to $SYS (but a bridge state) and $share/ are acknowledged and dropped, captured as publish-denied',
  async (t) => {
    const dir = tempDir();
    const out = join(dir, 'capture.ndjson');
    const b = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous true\nsys_interval 1\ncapture_sink file ${out}\n`, { dir });
    t.same(
      await reservedWrites(t, b.mqttUrl),
      { ...EXPECTED, sharedSubscription: 'granted' },
      'acknowledged, not delivered, not retained, still connected',
    );
    const v = await connectClient(t, b.mqttUrl, { clientId: 'reader' });
    const got = collect(v);
    await v.subscribeAsync('$SYS/broker/version');
    await new Promise((r) => setTimeout(r, 300));
    t.match(got[0]?.payload.toString(), /^mqprobe version /, "the broker's own $SYS/broker/version stands");
    await b.broker.close();
    const denied = readEvents(out).filter((e) => e.event.action === 'publish-denied');
    t.same(
      denied.map((e) => e.mqtt.topic),
      RESERVED,
      'one publish-denied event per reserved topic',
    );
    t.ok(denied.every((e) => e.mqtt.client_id === 'writer'));
  },
);

t.test('Mosquitto 2.0.11: the same reserved writes are acknowledged and dropped', async (t) => {
  const m = await startMosquitto(t);
  t.same(
    await reservedWrites(t, m.url),
    { ...EXPECTED, sharedSubscription: 'granted' },
    'acknowledged, not delivered, not retained, still connected',
  );
});

/** Sends a raw MQTT 3.1.1 CONNECT with the given client id; resolves with the CONNACK return code, or 'closed' when the server closes without one. */
async function rawConnect(port: number, clientId: string): Promise<number | 'closed'> {
  const sock = net.connect(port, '127.0.0.1');
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  return new Promise((resolve, reject) => {
    parser.on('packet', (p) => {
      if (p.cmd === 'connack') resolve((p as mqttPacket.IConnackPacket).returnCode ?? -1);
      sock.destroy();
    });
    sock.on('data', (d) => parser.parse(d));
    sock.on('close', () => resolve('closed'));
    sock.on('error', reject);
    sock.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 30 }));
  });
}

const BAD_IDS = ['tab\tid', 'esc\u001bid', 'del\u007fid', 'c1\u0085id'];

t.test('mqprobe: a client id with a control character gets CONNACK 2 and a protocol-error event', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'capture.ndjson');
  const b = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink file ${out}\n`, { dir });
  for (const id of BAD_IDS) t.equal(await rawConnect(b.port, id), 2, `refused: ${JSON.stringify(id)}`);
  t.equal(
    await rawConnect(b.port, 'nul\u0000id'),
    'closed',
    'U+0000 is a malformed string (MQTT-1.5.3-2): closed without CONNACK, as Mosquitto does',
  );
  t.equal(await rawConnect(b.port, 'plain-id-ü'), 0, 'an ordinary id (with non-ASCII letters) is accepted');
  await b.broker.close();
  const events = readEvents(out);
  const errors = events.filter((e) => e.event.action === 'protocol-error');
  t.equal(
    errors.filter((e) => /control character/.test(e.error?.message ?? '')).length,
    BAD_IDS.length,
    'one protocol-error naming the control character per refused id',
  );
  t.equal(errors.filter((e) => /MQTT-1\.5\.3-2/.test(e.error?.message ?? '')).length, 1, 'and one naming the rule for U+0000');
  t.equal(events.filter((e) => e.event.action === 'client-connected').length, 1);
});

t.test('Mosquitto 2.0.11: a client id with a control character is refused (it closes without CONNACK; docs/security.md)', async (t) => {
  const m = await startMosquitto(t);
  for (const id of [...BAD_IDS, 'nul\u0000id']) t.equal(await rawConnect(m.port, id), 'closed', `refused: ${JSON.stringify(id)}`);
  t.equal(await rawConnect(m.port, 'plain-id-ü'), 0);
});
