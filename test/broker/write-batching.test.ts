/**
 * TCP_NODELAY by default and one socket write per connection per pass of the event loop
 * (broker/engine/write-batching.ts). With Nagle's algorithm on, the PUBACK of a QoS 1 PUBLISH and
 * the delivery back to its publisher leave in separate writes and the second waits for the
 * client's delayed ACK (about 40 ms); Mosquitto 2.0.11 writes the delivery first, so a client that
 * answers it at once never waits. And the deliveries to one subscriber leave in few writes (without
 * the batching, TCP_NODELAY alone made one write, and one TCP segment, per packet).
 */
import t from 'tap';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { startTestBroker } from '../helpers/broker.js';
import { startMosquitto } from '../helpers/mosquitto.js';

const TRIES = 20;

async function rawClient(port: number, clientId: string) {
  const s = net.connect(port, '127.0.0.1');
  s.setNoDelay(true); // only the broker's writes are measured
  await new Promise((r) => s.once('connect', r));
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const waiters: { cmd: string; resolve: (p: mqttPacket.Packet) => void }[] = [];
  let reads = 0;
  let packets = 0;
  parser.on('packet', (p) => {
    packets++;
    if (p.cmd === 'publish' && p.qos === 1) s.write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId! })); // as a client does
    const i = waiters.findIndex((w) => w.cmd === p.cmd);
    if (i >= 0) waiters.splice(i, 1)[0].resolve(p);
  });
  s.on('data', (d) => {
    reads++;
    parser.parse(d);
  });
  const next = (cmd: string) => new Promise<mqttPacket.Packet>((resolve) => waiters.push({ cmd, resolve }));
  s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 0 }));
  await next('connack');
  t.teardown(() => s.destroy());
  return { s, next, counts: () => ({ reads, packets }) };
}

/** A client subscribed to its own topic publishes QoS 1 TRIES times; the median time from its PUBLISH to the delivery. */
async function selfRoundTrip(port: number): Promise<number> {
  const c = await rawClient(port, 'self-rtt');
  c.s.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rtt/self', qos: 1 }] }));
  await c.next('suback');
  const times: number[] = [];
  for (let i = 0; i < TRIES; i++) {
    const at = performance.now();
    const delivered = c.next('publish');
    const acked = c.next('puback');
    c.s.write(
      mqttPacket.generate({
        cmd: 'publish',
        topic: 'rtt/self',
        payload: Buffer.from(String(i)),
        qos: 1,
        messageId: 10 + i,
        retain: false,
        dup: false,
      }),
    );
    await delivered;
    times.push(performance.now() - at);
    await acked;
    await new Promise((r) => setTimeout(r, 5));
  }
  return times.sort((a, b) => a - b)[TRIES >> 1];
}

t.test('a QoS 1 round trip to oneself takes about a millisecond, not a delayed ACK (mqprobe defaults, Mosquitto 2.0.11)', async (t) => {
  const b = await startTestBroker(t);
  const ours = await selfRoundTrip(b.port);
  const m = await startMosquitto(t);
  const theirs = await selfRoundTrip(m.port);
  t.ok(ours < 20, `mqprobe: median ${ours.toFixed(2)} ms`);
  t.ok(theirs < 20, `Mosquitto: median ${theirs.toFixed(2)} ms`);
});

t.test('set_tcp_nodelay false: Nagle on, as before: the delivery waits for the delayed ACK of the PUBACK', async (t) => {
  const b = await startTestBroker(t, 'set_tcp_nodelay false\nlistener 0 127.0.0.1\nallow_anonymous true\n');
  const median = await selfRoundTrip(b.port);
  t.ok(median > 30, `median ${median.toFixed(2)} ms`);
});

t.test(
  'the deliveries that 10 publishers cause in one pass of the event loop leave in a few socket writes, not one per delivery (500 without batching)',
  async (t) => {
    const b = await startTestBroker(t);
    const sub = await rawClient(b.port, 'burst-sub');
    sub.s.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'burst/#', qos: 0 }] }));
    await sub.next('suback');
    const pubs = await Promise.all(Array.from({ length: 10 }, (_, i) => rawClient(b.port, `burst-pub-${i}`)));
    // the broker's end of the subscriber's connection: count the writes Node hands to the socket
    const conn = (b.broker.aedes as unknown as { clients: Record<string, { conn: Record<string, (...a: unknown[]) => unknown> }> }).clients[
      'burst-sub'
    ].conn;
    let writes = 0;
    for (const method of ['_write', '_writev']) {
      const original = conn[method];
      conn[method] = function (this: unknown, ...args: unknown[]) {
        writes++;
        return original.apply(this, args);
      };
    }
    const one = mqttPacket.generate({
      cmd: 'publish',
      topic: 'burst/x',
      payload: Buffer.alloc(16, 'b'),
      qos: 0,
      retain: false,
      dup: false,
    });
    const fifty = Buffer.concat(Array(50).fill(one));
    let rounds = 0;
    for (; rounds < 5; rounds++) {
      const before = sub.counts();
      if (rounds === 0) writes = 0;
      for (const p of pubs) p.s.write(fifty);
      const deadline = Date.now() + 10_000;
      while (sub.counts().packets - before.packets < 500 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      t.equal(sub.counts().packets - before.packets, 500, 'every delivery arrived');
    }
    t.ok(writes / rounds <= 4, `500 deliveries from 10 publishers in ${(writes / rounds).toFixed(1)} socket writes on average`);
  },
);
