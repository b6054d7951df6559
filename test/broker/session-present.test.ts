import t, { type Test } from 'tap';
import type { IClientOptions } from 'mqtt';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { startPersistentMosquitto, writableDir } from '../helpers/mosquitto-db.js';
import { startRedis } from '../helpers/redis.js';
import { connectClient } from '../helpers/mqtt.js';

// Session present for a session without subscriptions ([MQTT-3.2.2-2]): Mosquitto 2.0.11 keeps such a
// session and answers 1; mqprobe answers as it does (engine patch 60), in memory, with its snapshot and
// with its Redis state, and across a restart.

const ANON = 'allow_anonymous true\n';

/** Connects, reads the CONNACK's session present, disconnects. */
async function sessionPresent(t: Test, url: string, opts: IClientOptions): Promise<boolean> {
  let present: boolean | undefined;
  const c = await connectClient(t, url, opts, (c) => c.once('connect', (connack) => (present = connack.sessionPresent)));
  await c.endAsync();
  return present!;
}

const v311 = (clientId: string, clean: boolean): IClientOptions => ({ clientId, clean, protocolVersion: 4 });
const v5 = (clientId: string, sessionExpiryInterval: number, clean = false): IClientOptions => ({
  clientId,
  clean,
  protocolVersion: 5,
  properties: { sessionExpiryInterval },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The answers, in order, of one broker to the same connects. */
async function answers(t: Test, url: string): Promise<Record<string, boolean[]>> {
  const p311 = [];
  for (const clean of [false, false, true, false]) p311.push(await sessionPresent(t, url, v311('p311', clean)));
  const p5 = [await sessionPresent(t, url, v5('p5', 5)), await sessionPresent(t, url, v5('p5', 5))];
  const endedAt = Date.now();
  const zero = [await sessionPresent(t, url, v5('p5zero', 0)), await sessionPresent(t, url, v5('p5zero', 0))];
  await sleep(endedAt + 6500 - Date.now()); // the 5 s expiry of p5's session has passed (Mosquitto checks each second)
  p5.push(await sessionPresent(t, url, v5('p5', 5)));
  return { p311, p5, zero };
}

const WANT = {
  p311: [false, true, false, false], // kept, then wiped by a clean connect
  p5: [false, true, false], // kept, then expired
  zero: [false, false], // session expiry 0: ends with the connection
};

t.jobs = 3;

t.test('Mosquitto 2.0.11 answers session present 1 for a kept session without subscriptions', async (t) => {
  t.same(await answers(t, (await startMosquitto(t, ANON)).url), WANT);
});

t.test('mqprobe (memory) answers as Mosquitto', async (t) => {
  t.same(await answers(t, (await startTestBroker(t, `listener 0 127.0.0.1\n${ANON}`)).mqttUrl), WANT);
});

t.test('mqprobe (Redis state) answers as Mosquitto', async (t) => {
  const redis = await startRedis(t);
  t.same(await answers(t, (await startTestBroker(t, `listener 0 127.0.0.1\n${ANON}persistence_redis_url ${redis.url}\n`)).mqttUrl), WANT);
});

/** Sessions without subscriptions left before a restart, asked for after it. */
function acrossRestart(t: Test, restart: (url: string) => Promise<string>) {
  return async (url: string) => {
    await sessionPresent(t, url, v311('r311', false));
    await sessionPresent(t, url, v5('r5', 3600));
    await sessionPresent(t, url, v5('r5gone', 1));
    const after = await restart(url);
    await sleep(1500); // r5gone's second has passed
    return [
      await sessionPresent(t, after, v311('r311', false)),
      await sessionPresent(t, after, v5('r5', 3600)),
      await sessionPresent(t, after, v5('r5gone', 1)),
    ];
  };
}

t.test('sessions without subscriptions are kept across a restart, and expire as configured', async (t) => {
  const want = [true, true, false];
  const dir = tempDir();
  const snapshotConf = `listener 0 127.0.0.1\n${ANON}persistence true\npersistence_location ${dir}/\n`;
  const first = await startTestBroker(t, snapshotConf, { dir });
  const viaSnapshot = acrossRestart(t, async () => {
    await first.broker.close();
    return (await startTestBroker(t, snapshotConf, { dir })).mqttUrl;
  });
  t.same(await viaSnapshot(first.mqttUrl), want, 'mqprobe, snapshot');

  const redis = await startRedis(t);
  const redisConf = `listener 0 127.0.0.1\n${ANON}persistence_redis_url ${redis.url}\n`;
  const a = await startTestBroker(t, redisConf);
  const viaRedis = acrossRestart(t, async () => {
    await a.broker.close();
    return (await startTestBroker(t, redisConf)).mqttUrl;
  });
  t.same(await viaRedis(a.mqttUrl), want, 'mqprobe, Redis state');

  const mosq = await startPersistentMosquitto(t, writableDir(t));
  const viaMosquitto = acrossRestart(t, async (url) => {
    await mosq.stop('SIGTERM');
    await mosq.start();
    return url;
  });
  // Mosquitto 2.0.11 does not expire a session it restored until its client has come back and left again
  t.same(await viaMosquitto(mosq.url), [true, true, true], 'Mosquitto 2.0.11 (restored sessions do not expire)');
});
