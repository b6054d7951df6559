/**
 * QoS 0 PUBLISHes to 3.1/3.1.1 clients are encoded once per message (broker/engine/publish-encoding.ts):
 * the bytes are mqtt-packet's, and on the wire the same as Mosquitto 2.0.11 sends.
 */
import t from 'tap';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { encodedQoS0 } from '../../broker/engine/publish-encoding.js';
import { encodedConnack } from '../../broker/engine/connack-encoding.js';
import { startTestBroker, type Teardown } from '../helpers/broker.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { connectClient, until } from '../helpers/mqtt.js';

const publish = (topic: string, payload: Buffer, flags: { retain?: boolean; dup?: boolean } = {}) =>
  ({
    cmd: 'publish',
    qos: 0,
    topic,
    payload,
    retain: flags.retain ?? false,
    dup: flags.dup ?? false,
    brokerCounter: 1,
    brokerId: 'b',
  }) as const;

t.test('the encoding is the bytes mqtt-packet generates, across the Remaining Length sizes', async (t) => {
  const cases = [
    publish('a', Buffer.alloc(0)),
    publish('a/b', Buffer.from('x'), { retain: true }),
    publish('a/b', Buffer.from('x'), { dup: true, retain: true }),
    publish('t/température/€', Buffer.from('héllo')),
    publish('x'.repeat(200), Buffer.alloc(100, 1)), // remaining length 302: two bytes
    publish('y', Buffer.alloc(16 * 1024, 2)), // 16,387: three bytes
    publish('z'.repeat(4096), Buffer.alloc(125, 3)), // 4,223
  ];
  for (const [i, p] of cases.entries()) {
    const mine = encodedQoS0({ ...p, brokerCounter: 100 + i }, 4);
    t.ok(mine, `case ${i} is encoded here`);
    t.same(mine, mqttPacket.generate(p as mqttPacket.IPublishPacket), `case ${i}: the bytes of mqtt-packet`);
    t.same(encodedQoS0({ ...p, brokerCounter: 100 + i }, 3), mine, `case ${i}: MQTT 3.1 the same`);
    const v5 = encodedQoS0({ ...p, brokerCounter: 200 + i }, 5);
    t.same(v5, mqttPacket.generate(p as mqttPacket.IPublishPacket, { protocolVersion: 5 }), `case ${i}: MQTT 5 without properties`);
    t.same(encodedQoS0({ ...p, properties: {}, brokerCounter: 300 + i }, 5), v5, `case ${i}: MQTT 5, empty properties`);
  }
});

t.test('what is not a small QoS 0 PUBLISH to 3.1.1 is left to mqtt-packet; one message is encoded once', async (t) => {
  const p = publish('a', Buffer.from('1'));
  t.equal(encodedQoS0({ ...p, qos: 1 }, 4), undefined, 'QoS 1');
  t.equal(encodedQoS0({ ...p, properties: { subscriptionIdentifier: 3 } }, 5), undefined, 'MQTT 5 with a subscription identifier');
  t.equal(encodedQoS0({ ...p, properties: { userProperties: { a: 'b' } } }, 5), undefined, 'MQTT 5 with user properties');
  t.equal(encodedQoS0({ ...p, properties: { messageExpiryInterval: 9 } }, 5), undefined, 'MQTT 5 with a message expiry');
  const v4 = encodedQoS0({ ...p, brokerCounter: 8 }, 4);
  t.not(encodedQoS0({ ...p, brokerCounter: 8 }, 5), v4, 'the same message to an MQTT 5 client: its own bytes, not the 3.1.1 ones');
  t.equal(encodedQoS0({ ...p, payload: 'text' }, 4), undefined, 'a string payload');
  t.equal(encodedQoS0({ ...p, payload: Buffer.alloc(16 * 1024 + 1) }, 4), undefined, 'a payload above 16 KiB');
  t.equal(encodedQoS0({ ...p, topic: '' }, 4), undefined, 'an empty topic (mqtt-packet refuses it)');
  t.equal(encodedQoS0({ ...p, topic: Buffer.from('a') }, 4), undefined, 'a Buffer topic');
  t.equal(encodedQoS0({ ...p, cmd: 'puback' }, 4), undefined, 'not a PUBLISH');
  const first = encodedQoS0({ ...p, brokerCounter: 7 }, 4);
  t.equal(encodedQoS0({ ...p, brokerCounter: 7 }, 4), first, 'the next subscriber of the message gets the same buffer');
  t.not(encodedQoS0({ ...p, brokerCounter: 7, retain: true }, 4), first, 'other flags: encoded again');
  // a client in this process (no broker counter) may refill its buffer: never taken from memory
  const buf = Buffer.from('A');
  const client = { cmd: 'publish', qos: 0, topic: 'c', payload: buf };
  const a = encodedQoS0(client, 4)!;
  buf[0] = 0x42;
  t.equal(encodedQoS0(client, 4)!.at(-1), 0x42, 'a reused client buffer is encoded with its new bytes');
  t.equal(a.at(-1), 0x41);
});

/** A raw subscriber: every PUBLISH it receives as its exact bytes, in order. */
async function rawSubscriber(port: number, clientId: string, version: 3 | 4 | 5) {
  const s = net.connect(port, '127.0.0.1');
  t.teardown(() => s.destroy());
  await new Promise((r) => s.once('connect', r));
  const packets: Buffer[] = [];
  let buf = Buffer.alloc(0);
  s.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      let len = 0;
      let mul = 1;
      let i = 1;
      for (; i < buf.length && i < 5; i++) {
        len += (buf[i] & 0x7f) * mul;
        mul *= 128;
        if ((buf[i] & 0x80) === 0) break;
      }
      if (i >= buf.length || buf.length < i + 1 + len) return;
      packets.push(buf.subarray(0, i + 1 + len));
      buf = buf.subarray(i + 1 + len);
    }
  });
  s.write(
    mqttPacket.generate({
      cmd: 'connect',
      protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: version,
      clean: true,
      clientId,
      keepalive: 0,
    } as mqttPacket.IConnectPacket),
  );
  s.write(
    mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'enc/#', qos: 0 }] } as mqttPacket.ISubscribePacket, {
      protocolVersion: version,
    }),
  );
  await until(() => packets.some((p) => p[0] === 0x90), 10_000, `${clientId}: SUBACK`);
  return () => packets.filter((p) => p[0] >> 4 === 3);
}

const MESSAGES: [string, Buffer][] = [
  ['enc/a', Buffer.from('1')],
  ['enc/empty', Buffer.alloc(0)],
  ['enc/température', Buffer.from('héllo')],
  [`enc/${'l'.repeat(300)}`, Buffer.alloc(200, 7)],
  ['enc/big', Buffer.alloc(20_000, 9)], // above the copied size: mqtt-packet writes it
  ['enc/16k', Buffer.alloc(16 * 1024, 5)],
];

/** A retained message, then raw subscribers (3.1, 3.1.1, 3.1.1, 5) and an mqtt.js MQTT 5 one; the bytes each raw one got. */
async function run(t: Teardown & { same(a: unknown, b: unknown, msg: string): void }, port: number, url: string) {
  const pub = await connectClient(t, url, { clientId: 'enc-pub' });
  await pub.publishAsync('enc/retained', Buffer.from('kept'), { qos: 0, retain: true });
  const v5 = await connectClient(t, url, { clientId: 'enc-v5', protocolVersion: 5 });
  const got5: string[] = [];
  v5.on('message', (topic, payload) => got5.push(`${topic} ${payload.length}`));
  await v5.subscribeAsync('enc/#', { qos: 0 });
  const subs = [
    await rawSubscriber(port, 'enc-31', 3),
    await rawSubscriber(port, 'enc-311a', 4),
    await rawSubscriber(port, 'enc-311b', 4),
    await rawSubscriber(port, 'enc-5-raw', 5),
  ];
  for (const [topic, payload] of MESSAGES) pub.publish(topic, payload, { qos: 0 });
  await until(() => subs.every((s) => s().length === MESSAGES.length + 1) && got5.length === MESSAGES.length + 1, 15_000, 'every delivery');
  t.same(
    got5,
    ['enc/retained 4', ...MESSAGES.map(([topic, p]) => `${topic} ${p.length}`)],
    'the MQTT 5 subscriber gets every message (mqtt-packet encodes its copies)',
  );
  await pub.publishAsync('enc/retained', Buffer.alloc(0), { qos: 0, retain: true });
  return subs.map((s) => s().map((b) => b.toString('hex')));
}

t.test('on the wire: raw 3.1, 3.1.1 and 5 subscribers get the same bytes from mqprobe as from Mosquitto 2.0.11', async (t) => {
  const b = await startTestBroker(t);
  const m = await startMosquitto(t);
  const fromMqprobe = await run(t, b.port, b.mqttUrl);
  const fromMosquitto = await run(t, m.port, m.url);
  t.equal(fromMqprobe[0].length, MESSAGES.length + 1);
  t.same(fromMqprobe[1], fromMqprobe[0], '3.1 and 3.1.1 subscribers get the same PUBLISH bytes');
  t.same(fromMqprobe[2], fromMqprobe[1]);
  t.equal(fromMqprobe[3].length, MESSAGES.length + 1, 'the MQTT 5 raw subscriber gets every message');
  t.same(fromMqprobe, fromMosquitto, 'byte for byte what Mosquitto sends, the retained message (retain flag set) first');
});

t.test('CONNACK: the bytes mqtt-packet generates for 3.1 and 3.1.1; the rest is left to it', async (t) => {
  for (const returnCode of [0, 1, 2, 3, 4, 5, 128])
    for (const sessionPresent of [false, true]) {
      const p = { cmd: 'connack', returnCode, sessionPresent } as const;
      const mine = encodedConnack(p, 4);
      t.same(mine, mqttPacket.generate(p as mqttPacket.IConnackPacket), `rc ${returnCode}, session present ${sessionPresent}`);
      t.equal(encodedConnack(p, 3), mine, 'MQTT 3.1: the same, shared buffer');
    }
  t.equal(encodedConnack({ cmd: 'connack', returnCode: 0 }, 5), undefined, 'MQTT 5');
  for (const returnCode of [undefined, '0', -1, 256, 1.5, NaN])
    t.equal(
      encodedConnack({ cmd: 'connack', returnCode }, 4),
      undefined,
      `a return code mqtt-packet refuses or truncates: ${String(returnCode)}`,
    );
  t.equal(encodedConnack({ cmd: 'puback', returnCode: 0 }, 4), undefined, 'not a CONNACK');
});

/** The CONNACK a raw client gets for its CONNECT, as hex; the socket is closed after it. */
async function connackFor(port: number, connect: Partial<mqttPacket.IConnectPacket>): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  try {
    await new Promise((r) => s.once('connect', r));
    let got = Buffer.alloc(0);
    const done = new Promise<void>((resolve) =>
      s.on('data', (d) => {
        got = Buffer.concat([got, d]);
        if (got.length >= 4) resolve();
      }),
    );
    s.write(
      mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        keepalive: 0,
        ...connect,
      } as mqttPacket.IConnectPacket),
    );
    await done;
    return got.subarray(0, 4).toString('hex');
  } finally {
    s.destroy();
  }
}

t.test('on the wire: CONNACKs from mqprobe are the bytes Mosquitto 2.0.11 sends', async (t) => {
  const b = await startTestBroker(t);
  const m = await startMosquitto(t);
  const answers = async (port: number) => [
    await connackFor(port, { clientId: 'ca-31', protocolId: 'MQIsdp', protocolVersion: 3, clean: true }),
    await connackFor(port, { clientId: 'ca-1', clean: true }),
    await connackFor(port, { clientId: 'ca-2', clean: false }),
  ];
  const mine = await answers(b.port);
  t.same(mine, ['20020000', '20020000', '20020000']);
  t.same(mine, await answers(m.port), 'the same as Mosquitto');
});
