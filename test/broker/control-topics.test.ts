import t, { type Test } from 'tap';
import { startTestBroker } from '../helpers/broker.js';
import { collect, connectClient, until } from '../helpers/mqtt.js';
import { startMosquitto } from '../helpers/mosquitto.js';

/** Publishes to `$CONTROL/…` go to the broker's plugins, never to subscribers (Mosquitto 2.0.11's control__process), plugin or not. */
async function observe(t: Test, url: string): Promise<string[]> {
  const sub = await connectClient(t, url, { clientId: 'control-sub' });
  await sub.subscribeAsync(['$CONTROL/#', 'marker']);
  const got = collect(sub);
  const pub = await connectClient(t, url, { clientId: 'control-pub' });
  for (const topic of ['$CONTROL/dynamic-security/v1', '$CONTROL/x/v1', '$CONTROL/dynamic-security/v1/response']) {
    await pub.publishAsync(topic, '{"commands":[]}', { qos: 1 });
  }
  await pub.publishAsync('marker', 'end', { qos: 1 });
  await until(() => got.some((m) => m.topic === 'marker'), 5000, 'marker');
  return got.map((m) => m.topic);
}

t.test('$CONTROL publishes are acknowledged and never delivered, as by Mosquitto', async (t) => {
  const m = await startMosquitto(t, 'allow_anonymous true\n');
  const p = await startTestBroker(t);
  const want = await observe(t, m.url);
  t.same(want, ['marker'], 'Mosquitto delivers none');
  t.same(await observe(t, p.mqttUrl), want, 'neither does mqprobe');
});
