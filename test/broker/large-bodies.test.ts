/**
 * Large PUBLISH bodies are assembled in one buffer as they arrive (broker/engine/large-bodies.ts):
 * the real mqtt-packet parser, then the broker over real sockets (beside Mosquitto 2.0.11), with
 * bodies cut at every kind of boundary, packets that follow in the same read, and clients that
 * announce a large body and then leave.
 */
import t from 'tap';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import type { Client } from '../../broker/engine/vendor/aedes/aedes.js';
import { assembleLargeBodies } from '../../broker/engine/large-bodies.js';
import { LARGE_PAYLOAD_BYTES } from '../../broker/engine/large-packets.js';
import { startTestBroker, type Teardown } from '../helpers/broker.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { collect, connectClient, until } from '../helpers/mqtt.js';

const BIG = LARGE_PAYLOAD_BYTES + 12_345;
const CONF = 'allow_anonymous true\nmax_packet_size 268435455\n';

/** A payload whose every byte depends on its position, so a misplaced chunk shows. */
function patterned(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

const publish = (topic: string, payload: Buffer) =>
  mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false } as mqttPacket.IPublishPacket);

/** `bytes` cut into pieces of the given sizes, in turn (the last piece takes the rest). */
function cut(bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length];
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

t.test('the real parser: a large body read in pieces comes out whole, as a view of one buffer', async (t) => {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  assembleLargeBodies({ _parser: parser } as unknown as Client, 0);
  const packets: mqttPacket.IPublishPacket[] = [];
  parser.on('packet', (p) => packets.push(p as mqttPacket.IPublishPacket));
  parser.on('error', (e) => t.fail(`parser error: ${e.message}`));
  const big = patterned(BIG, 7);
  const small = patterned(1000, 9);
  const middle = patterned(LARGE_PAYLOAD_BYTES - 100, 11);
  // a 3-byte piece splits the fixed header; the big body's tail shares a read with the packets after it
  const stream = Buffer.concat([publish('a/big', big), publish('a/small', small), publish('a/middle', middle)]);
  for (const piece of cut(stream, [3, 65_536, 65_536 - 7, 1, 16_384])) parser.parse(piece);
  t.same(
    packets.map((p) => p.topic),
    ['a/big', 'a/small', 'a/middle'],
    'every packet, in order',
  );
  t.ok(Buffer.compare(packets[0].payload as Buffer, big) === 0, 'the large payload byte for byte');
  t.ok(Buffer.compare(packets[1].payload as Buffer, small) === 0, 'the small one after it');
  t.ok(Buffer.compare(packets[2].payload as Buffer, middle) === 0, 'one just below the threshold');
  const body = (packets[0].payload as Buffer).buffer;
  t.equal(body.byteLength, 2 + 'a/big'.length + BIG, 'the payload is a view of the one buffer the body was read into');
  t.not(
    (packets[2].payload as Buffer).buffer.byteLength,
    2 + 'a/middle'.length + LARGE_PAYLOAD_BYTES - 100,
    'below the threshold: the parser as before',
  );
});

t.test('the real parser: a large body that arrives in one read is not copied again', async (t) => {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  assembleLargeBodies({ _parser: parser } as unknown as Client, 0);
  const packets: mqttPacket.IPublishPacket[] = [];
  parser.on('packet', (p) => packets.push(p as mqttPacket.IPublishPacket));
  const big = patterned(BIG, 3);
  const wire = publish('a/big', big);
  parser.parse(wire);
  t.equal(packets.length, 1);
  t.equal((packets[0].payload as Buffer).buffer, wire.buffer, "a view of the read's own buffer");
});

t.test('hostile: a header announcing more than max_packet_size gets no buffer; within it, one buffer of its length', async (t) => {
  const announced = 64 * 1024 * 1024;
  // the fixed header and the topic of a PUBLISH announcing 64 MiB, then the first bytes of its body
  const start = publish('a/big', Buffer.alloc(announced - 2 - 'a/big'.length)).subarray(0, 16 * 1024);
  /** The sizes of the Buffers allocated outside the pool while the parser takes `start`. */
  const allocations = (max: number) => {
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    assembleLargeBodies({ _parser: parser } as unknown as Client, max);
    const sizes: number[] = [];
    const slow = Buffer.allocUnsafeSlow;
    Buffer.allocUnsafeSlow = (n: number) => (sizes.push(n), slow(n));
    try {
      parser.parse(start);
    } finally {
      Buffer.allocUnsafeSlow = slow;
    }
    return sizes;
  };
  t.same(allocations(32 * 1024 * 1024), [], 'over max_packet_size: nothing allocated for the body');
  t.same(allocations(0), [announced], 'no limit: one buffer of the announced length (address space until written)');
});

/** Connects raw (MQTT 3.1.1) and waits for the CONNACK. */
async function raw(t: Teardown, port: number, id: string): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  t.teardown(() => s.destroy());
  await new Promise((r) => s.once('connect', r));
  s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: id, keepalive: 0 }));
  await new Promise((r) => s.once('data', r));
  return s;
}

/** Writes the pieces one by one, each after the previous one left this process. */
async function dribble(s: net.Socket, pieces: Buffer[]): Promise<void> {
  for (const p of pieces) await new Promise<void>((r, j) => s.write(p, (e) => (e ? j(e) : r())));
}

for (const broker of ['mqprobe', 'Mosquitto 2.0.11']) {
  t.test(
    `${broker}: a large publish written in odd pieces, with the next publish in its last write, is delivered whole and in order`,
    async (t) => {
      const port =
        broker === 'mqprobe' ? (await startTestBroker(t, `listener 0 127.0.0.1\n${CONF}`)).port : (await startMosquitto(t, CONF)).port;
      const sub = await connectClient(t, `mqtt://127.0.0.1:${port}`, { clientId: 'sub' });
      const got = collect(sub);
      await sub.subscribeAsync('b/#');
      const big = patterned(BIG, 5);
      const small = patterned(10, 1);
      // a client that announces a large body, sends part of it and leaves: nothing of it is delivered, nobody else is affected
      const quitter = await raw(t, port, 'quitter');
      await dribble(quitter, [publish('b/never', patterned(BIG, 2)).subarray(0, 1_000_000)]);
      quitter.destroy();
      const pub = await raw(t, port, 'pub');
      await dribble(pub, cut(Buffer.concat([publish('b/big', big), publish('b/small', small)]), [2, 65_536 + 3, 9_999, 1_048_576]));
      await until(() => got.length === 2, 30_000, 'both messages delivered');
      t.same(
        got.map((m) => m.topic),
        ['b/big', 'b/small'],
        'in order, and nothing of the abandoned one',
      );
      t.ok(Buffer.compare(got[0].payload, big) === 0, 'the large payload byte for byte');
      t.ok(Buffer.compare(got[1].payload, small) === 0, 'the small one');
    },
  );
}
