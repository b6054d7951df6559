/** Without a listener, Mosquitto 2.0's local-only mode: 127.0.0.1 and ::1, anonymous allowed, said in the log. */
import t from 'tap';
import { spawn } from 'node:child_process';
import { freePort, spawnCli, waitForPort } from '../helpers/broker.js';
import { connectClient } from '../helpers/mqtt.js';
import { killAndWait } from '../helpers/mosquitto.js';

/** Both loopback addresses accept an anonymous MQTT client and publish round trip. */
async function bothLoopbacks(t: Parameters<typeof connectClient>[0], port: number): Promise<string[]> {
  const reached: string[] = [];
  for (const host of ['127.0.0.1', '[::1]']) {
    const c = await connectClient(t, `mqtt://${host}:${port}`);
    await c.subscribeAsync('lo/t');
    const got = new Promise<string>((r) => c.once('message', (_topic, p) => r(p.toString())));
    await c.publishAsync('lo/t', host, { qos: 1 });
    reached.push(await got);
    await c.endAsync();
  }
  return reached;
}

t.test('mqprobe -p PORT without a config: IPv4 and IPv6 loopback, and the local-only words in the log', async (t) => {
  const port = await freePort();
  const p = spawnCli(t, ['-p', String(port)]);
  await waitForPort(port);
  await waitForPort(port, undefined, '::1');
  t.same(await bothLoopbacks(t, port), ['127.0.0.1', '[::1]']);
  t.match(p.output(), /Starting in local only mode\. Connections will only be possible from clients running on this machine\./);
  t.match(p.output(), /Create a configuration file which defines a listener to allow remote access\./);
});

t.test('Mosquitto 2.0.11 -p PORT without a config: the same', async (t) => {
  const port = await freePort();
  const m = spawn('mosquitto', ['-p', String(port)], { stdio: 'ignore' });
  t.teardown(() => killAndWait(m));
  await waitForPort(port);
  await waitForPort(port, undefined, '::1');
  t.same(await bothLoopbacks(t, port), ['127.0.0.1', '[::1]']);
});
