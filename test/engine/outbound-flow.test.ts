/**
 * Deliveries to MQTT 5 clients as Mosquitto 2.0.11 makes them, each case against mqprobe and the real
 * Mosquitto with raw packets (wire.ts) so that acknowledgements are sent only when the test says so:
 * the client's Receive Maximum caps unacknowledged QoS 1/2 deliveries (engine patch 11); overlapping
 * subscriptions give one copy at the highest QoS with every identifier (engine patch 12; Mosquitto sends
 * one copy per subscription, which MQTT 5 also allows: docs/mqtt5.md).
 */
import t, { type Test } from 'tap';
import { startTestBroker } from '../helpers/broker.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { WireClient, type Received } from './wire.js';

async function brokers(tt: Test, conf = 'allow_anonymous true\n'): Promise<{ name: string; port: number }[]> {
  const ours = await startTestBroker(tt, `listener 0 127.0.0.1\n${conf}`);
  const theirs = await startMosquitto(tt, conf);
  return [
    { name: 'mosquitto', port: theirs.port },
    { name: 'mqprobe', port: ours.port },
  ];
}

async function client(tt: Test, port: number, clientId: string, properties: Record<string, unknown> = {}) {
  const { c, connack } = await WireClient.connect(port, { clientId, properties });
  tt.teardown(() => c.end());
  tt.equal(connack?.reasonCode, 0, `${clientId} connected`);
  return c;
}

const payloads = (ms: Received[]) => ms.map((m) => String(m.payload));

/** A subscriber allowing 2 unacknowledged deliveries; 5 QoS 1 (or 2) messages; what arrives before and after each ack. */
async function receiveMaximum(tt: Test, port: number, qos: 1 | 2) {
  const s = await client(tt, port, `rm-sub-${qos}`, { receiveMaximum: 2 });
  s.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rm/t', qos }] });
  await s.next('suback');
  const p = await client(tt, port, `rm-pub-${qos}`);
  for (let i = 1; i <= 5; i++) {
    p.send({ cmd: 'publish', topic: 'rm/t', payload: Buffer.from(`m${i}`), qos, messageId: i, retain: false, dup: false });
    if (qos === 1) await p.next('puback');
    else {
      await p.next('pubrec');
      p.send({ cmd: 'pubrel', messageId: i });
      await p.next('pubcomp');
    }
  }
  const answers: string[][] = [];
  const batch = await s.publishes(2);
  // nothing more until an acknowledgement
  batch.push(...(await s.publishes(1, 300)));
  answers.push(payloads(batch));
  while (batch.length > 0) {
    const next = batch.shift()!;
    const messageId = (next as { messageId?: number }).messageId;
    tt.equal(next.qos, qos, `delivered at QoS ${qos}`);
    if (qos === 1) s.send({ cmd: 'puback', messageId });
    else {
      s.send({ cmd: 'pubrec', messageId });
      await s.next('pubrel');
      s.send({ cmd: 'pubcomp', messageId });
    }
    const more = await s.publishes(1, 500);
    answers.push(payloads(more));
    batch.push(...more);
  }
  return answers;
}

for (const qos of [1, 2] as const) {
  t.test(`QoS ${qos}: Receive Maximum 2 from the client caps unacknowledged deliveries, the rest go as acks come`, async (tt) => {
    const expected = [['m1', 'm2'], ['m3'], ['m4'], ['m5'], [], []];
    for (const b of await brokers(tt)) tt.same(await receiveMaximum(tt, b.port, qos), expected, `${b.name}: 2, then one per ack`);
  });
}

/** Receive Maximum 2, 10 QoS 1 messages while the subscriber acknowledges none, then it acknowledges all it gets. */
async function queueBeyondWindow(tt: Test, port: number): Promise<string[]> {
  const s = await client(tt, port, 'rmq-sub', { receiveMaximum: 2 });
  s.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rmq/t', qos: 1 }] });
  await s.next('suback');
  const p = await client(tt, port, 'rmq-pub');
  for (let i = 1; i <= 10; i++) {
    p.send({ cmd: 'publish', topic: 'rmq/t', payload: Buffer.from(`m${i}`), qos: 1, messageId: i, retain: false, dup: false });
    await p.next('puback');
  }
  const got: Received[] = [];
  for (let next = await s.next('publish'); next; next = await s.next('publish', 500)) {
    got.push(next);
    s.send({ cmd: 'puback', messageId: (next as { messageId?: number }).messageId });
  }
  return payloads(got);
}

t.test('max_queued_messages 3 and Receive Maximum 2: 2 in flight + 3 queued reach the client, the rest are dropped', async (tt) => {
  const answers = [];
  for (const b of await brokers(tt, 'allow_anonymous true\nmax_queued_messages 3\n')) answers.push(await queueBeyondWindow(tt, b.port));
  tt.same(answers[0], ['m1', 'm2', 'm3', 'm4', 'm5'], 'Mosquitto 2.0.11');
  tt.same(answers[1], answers[0], 'mqprobe: the same');
});

/** `ov/#` QoS 0 (identifier 1) and `ov/+` QoS 1 (identifier 2), one QoS 1 publish to ov/x, one to ov/x/y. */
async function overlapping(tt: Test, port: number, version: 4 | 5) {
  const { c: s } = await WireClient.connect(port, { clientId: `ov-sub-${version}` }, version);
  tt.teardown(() => s.end());
  const v5 = (id: number) => (version === 5 ? { properties: { subscriptionIdentifier: id } } : {});
  s.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'ov/#', qos: 0 }], ...v5(1) });
  await s.next('suback');
  s.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'ov/+', qos: 1 }], ...v5(2) });
  await s.next('suback');
  const { c: p } = await WireClient.connect(port, { clientId: `ov-pub-${version}` }, version);
  tt.teardown(() => p.end());
  const copies = [];
  for (const [messageId, topic] of [
    [1, 'ov/x'],
    [2, 'ov/x/y'],
  ] as const) {
    p.send({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId, retain: false, dup: false });
    await p.next('puback');
    const got = await s.all('publish', 400);
    copies.push(got.map((m) => `QoS ${m.qos}${version === 5 ? ` id ${JSON.stringify(m.properties?.subscriptionIdentifier)}` : ''}`).sort());
  }
  return copies;
}

for (const version of [4, 5] as const) {
  t.test(
    `MQTT ${version === 5 ? '5' : '3.1.1'}: overlapping subscriptions, one copy at the highest QoS with every identifier`,
    async (tt) => {
      const [theirs, ours] = await brokers(tt);
      const id = (ids: string) => (version === 5 ? ` id ${ids}` : '');
      const oneCopy = [[`QoS 1${id('[1,2]')}`], [`QoS 0${id('1')}`]];
      // MQTT 3.1.1: Mosquitto 2.0.11 sends one copy at the highest QoS too; MQTT 5: one per subscription (also allowed)
      const mosquitto = version === 5 ? [[`QoS 0${id('1')}`, `QoS 1${id('2')}`], [`QoS 0${id('1')}`]] : oneCopy;
      tt.same(await overlapping(tt, theirs!.port, version), mosquitto, 'Mosquitto 2.0.11');
      tt.same(
        await overlapping(tt, ours!.port, version),
        oneCopy,
        'mqprobe: one copy at QoS 1 with both identifiers; a topic only # matches: QoS 0, identifier 1',
      );
    },
  );
}
