import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { freePort, spawnCli, waitForPort, type Teardown } from './broker.js';
import { tempDir } from './tmp.js';
import { startMosquitto, type MosquittoPeer } from './mosquitto.js';
import { connectClient } from './mqtt.js';

export const sha256File = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** The persistence lines both Mosquitto and mqprobe read: `persistence_file mosquitto.db` in `dir`. */
export const persistenceConf = (dir: string): string =>
  `allow_anonymous true\npersistence true\npersistence_location ${dir}/\npersistence_file mosquitto.db\nautosave_interval 1\n`;

/** A folder Mosquitto (started as root, running as user `mosquitto`) can write its db into, removed at teardown. */
export function writableDir(t: Teardown): string {
  const dir = tempDir('mqprobe-mosqdb-');
  chmodSync(dir, 0o777);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Real Mosquitto with persistence into `dir`/mosquitto.db; `stop('SIGTERM')` makes it save the file. */
export function startPersistentMosquitto(t: Teardown, dir: string): Promise<MosquittoPeer> {
  return startMosquitto(t, persistenceConf(dir), { dir });
}

/** mqprobe with the same persistence lines as Mosquitto, on a port of its own. */
export async function startMqprobe(t: Teardown, dir: string) {
  const port = await freePort();
  const conf = join(dir, 'mqprobe.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\n${persistenceConf(dir)}log_dest stdout\n`);
  const p = spawnCli(t, ['-c', conf]);
  await waitForPort(port);
  return { ...p, url: `mqtt://127.0.0.1:${port}` };
}

/** What makeState leaves queued for `sleeper`, in order. */
export const SLEEPER_QUEUE = [
  { topic: 'queue/a', payload: 'm1', qos: 1 },
  { topic: 'queue/b', payload: 'm2', qos: 2 },
  { topic: 'queue/c', payload: 'm3', qos: 1 },
];
export const RETAINED = { 'retained/1': 'kept', 'retained/2': 'second' };

/**
 * Leaves broker state behind through MQTT alone: two retained messages, a persistent session
 * `sleeper` with three subscriptions and three queued QoS 1/2 messages, and a persistent session
 * `sleeper2` with one subscription and one queued message.
 */
export async function makeState(t: Teardown, url: string): Promise<void> {
  const sleeper = await connectClient(t, url, { clientId: 'sleeper', clean: false });
  await sleeper.subscribeAsync({ 'queue/#': { qos: 2 }, 'other/+/x': { qos: 1 }, alerts: { qos: 0 } });
  await sleeper.endAsync();
  const sleeper2 = await connectClient(t, url, { clientId: 'sleeper2', clean: false });
  await sleeper2.subscribeAsync('q1/#', { qos: 1 });
  await sleeper2.endAsync();
  const pub = await connectClient(t, url, { clientId: 'publisher' });
  await pub.publishAsync('retained/1', RETAINED['retained/1'], { qos: 1, retain: true });
  await pub.publishAsync('retained/2', RETAINED['retained/2'], { qos: 0, retain: true });
  for (const m of SLEEPER_QUEUE) await pub.publishAsync(m.topic, m.payload, { qos: m.qos as 1 | 2 });
  await pub.publishAsync('q1/x', 'only-for-2', { qos: 1 });
  await pub.endAsync();
}

/** A mosquitto.db written by the real Mosquitto 2.0.11 after makeState, and its folder. */
export async function mosquittoWrittenDb(t: Teardown): Promise<{ dir: string; file: string; bytes: Buffer }> {
  const dir = writableDir(t);
  const mosq = await startPersistentMosquitto(t, dir);
  await makeState(t, mosq.url);
  await mosq.stop('SIGTERM');
  const file = join(dir, 'mosquitto.db');
  return { dir, file, bytes: readFileSync(file) };
}
