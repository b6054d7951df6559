/**
 * [MQTT-4.6.0-6] A resumed persistent session gets the QoS 1 messages stored for it while it was away
 * and the ones published while they are being sent in publish order, each once (issue 19: the client got
 * some stored ones, then new live ones, then the rest). Same steps against Mosquitto 2.0.11 and mqprobe
 * (engine patch 46; its state in memory and in Redis), over MQTT 3.1.1 and over MQTT 5 with a small Receive Maximum (engine patch 11).
 */
import net from 'node:net';
import t from 'tap';
import { Aedes, type Client, type PublishPacket } from '../../broker/engine/vendor/aedes/aedes.js';
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

// White box, on the bare engine: a persistent session's live message is stored before it is routed, so one
// stored just before the resumed session's queue is read and routed just after reaches the client twice unless
// the routed copy is dropped. The routing is replayed here, once the queue walk has begun, with the stored packet.
t.test('a stored message routed again while the resumed queue is sent goes out once (the race replayed in-process)', async (t) => {
  const aedes = await Aedes.createBroker();
  const server = net.createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  // the broker's per-delivery hook (patch 40's layout), not in the engine's typings
  const deliverQoS = (aedes as unknown as { deliverQoS: (client: Client, packet: PublishPacket, cb: () => void) => void }).deliverQoS;

  const session = { clientId: 'order-race', clean: false };
  const first = await connectClient(t, url, session);
  await first.subscribeAsync(TOPIC, { qos: 1 });
  await first.endAsync();

  const pub = await connectClient(t, url, { clientId: 'order-race-pub' });
  await pub.publishAsync(TOPIC, 'once', { qos: 1 });
  // the message as routed: the stored copy carries the broker id and counter a routed one has
  const { persistence } = aedes as unknown as { persistence: { outgoingStream(c: { id: string }): AsyncIterable<PublishPacket> } };
  const queue = persistence.outgoingStream({ id: session.clientId });
  let stored: PublishPacket | undefined;
  for await (const packet of queue) stored ??= packet;
  t.equal(String(stored?.payload), 'once', 'the message is stored for the offline session');

  let replayed = false;
  aedes.once('connackSent', (_connack, client) =>
    // after the CONNACK the connect handler goes on to the stored queue in the same turn
    queueMicrotask(() => deliverQoS.call(aedes, client, stored!, () => (replayed = true))),
  );
  let got: ReturnType<typeof collect> = [];
  const resumed = await connectClient(t, url, session, (c) => (got = collect(c)));
  await until(() => replayed && got.length >= 1, 10_000, 'the stored message and the replayed routing');
  // a second copy would be written before the SUBACK of a subscribe sent now; without the skip the second
  // send renumbers the stored copy, the client's PUBACK for the first finds no packet and the broker drops
  // the connection (no SUBACK): the wait's timeout turns that into a failure
  let subscribed = false;
  void resumed.subscribeAsync('order/other', { qos: 1 }).then(() => (subscribed = true));
  await until(() => subscribed || got.length > 1, 10_000, 'the SUBACK or a second copy');
  t.same(
    got.map((m) => String(m.payload)),
    ['once'],
    'received once',
  );
});
