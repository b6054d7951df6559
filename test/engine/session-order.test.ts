/**
 * [MQTT-4.6.0-6] A resumed persistent session gets the QoS 1 messages stored for it while it was away
 * and the ones published while they are being sent in publish order, each once (issue 19: the client got
 * some stored ones, then new live ones, then the rest). Same steps against Mosquitto 2.0.11 and mqprobe
 * (engine patch 46; its state in memory and in Redis), over MQTT 3.1.1 and over MQTT 5 with a small Receive Maximum (engine patch 11).
 */
import t from 'tap';
import type { IClientOptions } from 'mqtt';
import { mosquittoAndMqprobe } from '../helpers/mosquitto.js';
import { startTestBroker } from '../helpers/broker.js';
import { startRedis } from '../helpers/redis.js';
import { connectClient, collect, until } from '../helpers/mqtt.js';

const STORED = 500;
const LIVE = 500;
const TOPIC = 'order/t';

const cases: [label: string, opts: IClientOptions][] = [
  ['MQTT 3.1.1', { protocolVersion: 4 }],
  ['MQTT 5, Receive Maximum 10', { protocolVersion: 5, properties: { sessionExpiryInterval: 3600, receiveMaximum: 10 } }],
];

t.test('stored and live QoS 1 messages of a resumed session arrive once, in publish order', async (t) => {
  const brokers = await mosquittoAndMqprobe(t, 'allow_anonymous true\n');
  const redis = await startRedis(t);
  const withRedis = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous true\npersistence_redis_url ${redis.url}\n`);
  brokers.push(['mqprobe, state in Redis', withRedis.mqttUrl]);
  for (const [label, opts] of cases) {
    for (const [name, url] of brokers) {
      await t.test(`${name}, ${label}`, async (t) => {
        const clientId = `order-${opts.protocolVersion}`;
        const session = { ...opts, clientId, clean: false };
        const first = await connectClient(t, url, session);
        await first.subscribeAsync(TOPIC, { qos: 1 });
        await first.endAsync();

        const pub = await connectClient(t, url, { protocolVersion: opts.protocolVersion, clientId: `${clientId}-pub` });
        for (let i = 0; i < STORED; i++) await pub.publishAsync(TOPIC, String(i), { qos: 1 });

        // the live publishes start at the CONNACK, so they meet the stored queue being sent
        let got: ReturnType<typeof collect> = [];
        let live: Promise<unknown>[] = [];
        const publishLive = () => (live = Array.from({ length: LIVE }, (_, i) => pub.publishAsync(TOPIC, String(STORED + i), { qos: 1 })));
        await connectClient(t, url, session, (c) => {
          got = collect(c);
          c.once('connect', publishLive);
        });
        await Promise.all(live);
        await until(() => got.length >= STORED + LIVE, 20_000, `${STORED + LIVE} messages`);

        const order = got.map((m) => Number(String(m.payload)));
        const firstWrong = order.findIndex((n, i) => n !== i);
        t.equal(firstWrong, -1, `in order (first out of place at ${firstWrong}: ${order.slice(firstWrong, firstWrong + 5).join(',')})`);
        t.equal(got.length, STORED + LIVE, 'each message once');
      });
    }
  }
});
