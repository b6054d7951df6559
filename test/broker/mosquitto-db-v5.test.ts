import t, { type Test } from 'tap';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import { connectClient, until } from '../helpers/mqtt.js';
import { startMqprobe, startPersistentMosquitto, writableDir } from '../helpers/mosquitto-db.js';

// MQTT 5 state in a mosquitto.db written by the real Mosquitto 2.0.11: after mqprobe imported it, an MQTT 5
// client gets what Mosquitto itself gives it after its own restart from the same file.

const V5 = { protocolVersion: 5 } as const;
const props = {
  userProperties: { site: 'north', tag: ['a', 'b'] },
  contentType: 'application/json',
  responseTopic: 'reply/here',
  correlationData: Buffer.from([0, 1, 2, 0xff]),
  payloadFormatIndicator: true,
};
const LONG = 3600;

/** Leaves MQTT 5 state behind through MQTT alone, and when it did (s since the epoch). */
async function makeV5State(t: Test, url: string) {
  const s5 = await connectClient(t, url, { ...V5, clientId: 's5', clean: false, properties: { sessionExpiryInterval: LONG } });
  await s5.subscribeAsync('v5/#', { qos: 1, properties: { subscriptionIdentifier: 7 } });
  await s5.subscribeAsync('kept/#', { qos: 1, rap: true, properties: { subscriptionIdentifier: 9 } });
  await s5.subscribeAsync('nl/#', { qos: 1, nl: true });
  await s5.endAsync();
  // sessions without subscriptions: Mosquitto writes them too
  await (await connectClient(t, url, { ...V5, clientId: 'empty5', clean: false, properties: { sessionExpiryInterval: LONG } })).endAsync();
  await (await connectClient(t, url, { clientId: 'empty311', clean: false })).endAsync();
  const pub = await connectClient(t, url, V5);
  await pub.publishAsync('ret/v5', 'retained', { qos: 1, retain: true, properties: { ...props, messageExpiryInterval: LONG } });
  await pub.publishAsync('v5/props', 'queued', { qos: 1, properties: props });
  await pub.publishAsync('v5/short', 'expires', { qos: 1, properties: { messageExpiryInterval: 1 } });
  await pub.publishAsync('v5/long', 'expiring', { qos: 2, properties: { messageExpiryInterval: LONG } });
  await pub.publishAsync('kept/r', 'retain as published', { qos: 1, retain: true });
  await pub.endAsync();
  return Math.floor(Date.now() / 1000);
}

type Got = Pick<IPublishPacket, 'topic' | 'qos' | 'retain' | 'properties'> & { payload: string };

/** Connects and collects whole PUBLISH packets from the first one on; resolves with the CONNACK's session present. */
async function collecting(t: Test, url: string, opts: IClientOptions) {
  const got: Got[] = [];
  let sessionPresent: boolean | undefined;
  const client: MqttClient = await connectClient(t, url, opts, (c) => {
    c.on('message', (topic, payload, p) =>
      got.push({ topic, payload: payload.toString(), qos: p.qos, retain: p.retain, properties: p.properties }),
    );
    c.once('connect', (connack) => (sessionPresent = connack.sessionPresent));
  });
  return { client, got, sessionPresent };
}

/** What a broker gives `s5` resuming its session and a new MQTT 5 reader of the retained messages. */
async function observe(t: Test, url: string) {
  const s5 = await collecting(t, url, { ...V5, clientId: 's5', clean: false, properties: { sessionExpiryInterval: LONG } });
  await until(() => s5.got.length >= 3, 10_000, 'the queued messages');
  // no local survived: s5's own publish on nl/# does not come back; v5/done, sent after it on the same connection, does
  await s5.client.publishAsync('nl/x', 'own', { qos: 1 });
  await s5.client.publishAsync('v5/done', 'live', { qos: 1 });
  await until(() => s5.got.some((m) => m.topic === 'v5/done'), 5000, 'the live message');
  const reader = await collecting(t, url, V5);
  await reader.client.subscribeAsync('ret/#', { qos: 1 });
  await until(() => reader.got.length === 1, 5000, 'the retained message');
  await s5.client.endAsync();
  await reader.client.endAsync();
  const empty = [];
  for (const opts of [
    { ...V5, clientId: 'empty5', clean: false },
    { clientId: 'empty311', clean: false },
  ]) {
    const c = await collecting(t, url, opts);
    empty.push(c.sessionPresent);
    await c.client.endAsync();
  }
  return { sessionPresent: s5.sessionPresent, queued: s5.got, retained: reader.got, empty };
}

/** The remaining expiry interval counts down; the rest must be equal. */
function comparable(o: Awaited<ReturnType<typeof observe>>) {
  const strip = (m: Got) => {
    const { messageExpiryInterval, ...rest } = m.properties ?? {};
    return {
      ...m,
      properties: rest,
      expiry: messageExpiryInterval === undefined ? 'none' : messageExpiryInterval > LONG - 120 && messageExpiryInterval <= LONG,
    };
  };
  return {
    sessionPresent: o.sessionPresent,
    empty: o.empty,
    queued: o.queued.map(strip).sort((a, b) => a.topic.localeCompare(b.topic)),
    retained: o.retained.map(strip),
  };
}

t.test('MQTT 5 state imported from a Mosquitto 2.0.11 db is delivered as Mosquitto delivers it after its own restart', async (t) => {
  const dir = writableDir(t);
  const mosq = await startPersistentMosquitto(t, dir);
  const madeAt = await makeV5State(t, mosq.url);
  await mosq.stop('SIGTERM');
  // v5/short (1 s) has expired in the file's time before either broker reads it
  await until(() => Date.now() / 1000 > madeAt + 2, 5000, 'the short expiry to pass');

  const mqprobe = await startMqprobe(t, dir);
  await until(() => /imported Mosquitto persistence file/.test(mqprobe.output()), 10_000, 'the import log line');
  t.match(mqprobe.output(), /1 messages in .* had expired and were left out/, 'the expired message is left out');
  t.notMatch(mqprobe.output(), /dropped/, 'no property is dropped');
  const fromMqprobe = await observe(t, mqprobe.url);

  await mosq.start();
  const fromMosquitto = await observe(t, mosq.url);

  const want = comparable(fromMosquitto);
  t.same(comparable(fromMqprobe), want, 'mqprobe delivers the same messages with the same properties as Mosquitto 2.0.11');
  // what Mosquitto answers, spelled out, so that a change on both sides cannot pass unnoticed
  t.equal(want.sessionPresent, true, 'session present');
  t.same(want.empty, [true, true], 'session present for the MQTT 5 and 3.1.1 sessions without subscriptions');
  t.same(
    want.queued.map((m) => [m.topic, m.payload, m.qos, m.retain, m.properties.subscriptionIdentifier, m.expiry]),
    [
      ['kept/r', 'retain as published', 1, true, 9, 'none'],
      ['v5/done', 'live', 1, false, 7, 'none'],
      ['v5/long', 'expiring', 1, false, 7, true],
      ['v5/props', 'queued', 1, false, 7, 'none'],
    ],
    "queued: retain as published kept, QoS 2 at the subscription's QoS 1, subscription identifiers, the remaining expiry; the expired one and the no-local echo absent",
  );
  const { correlationData, ...rest } = want.queued[3].properties;
  t.same(rest, {
    userProperties: props.userProperties,
    contentType: props.contentType,
    responseTopic: props.responseTopic,
    payloadFormatIndicator: true,
    subscriptionIdentifier: 7,
  });
  t.same(correlationData, props.correlationData, 'correlation data, binary');
  t.same(
    [want.retained[0].topic, want.retained[0].retain, want.retained[0].expiry, want.retained[0].properties.userProperties],
    ['ret/v5', true, true, props.userProperties],
    'the retained message with its properties and remaining expiry',
  );
});
