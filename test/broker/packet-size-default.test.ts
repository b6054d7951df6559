/** max_packet_size defaults to Mosquitto 2.1's 2,000,000 bytes: a client cannot make the broker buffer a 256 MB packet. */
import t from 'tap';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { startTestBroker } from '../helpers/broker.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { connectClient, collect, until } from '../helpers/mqtt.js';

/**
 * Connects raw, sends one PUBLISH whose whole packet is `size` bytes, then a PINGREQ: resolves false when
 * the PINGRESP comes back (the publish was taken), true when the broker closes the connection instead.
 */
async function publishOfSize(port: number, size: number): Promise<boolean> {
  const sock = net.connect(port, '127.0.0.1');
  const connect = mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId: `p${size}`,
    keepalive: 30,
  });
  const topic = 't/big';
  const build = (n: number) =>
    mqttPacket.generate({
      cmd: 'publish',
      topic,
      payload: Buffer.alloc(n, 'x'),
      qos: 0,
      retain: false,
      dup: false,
    } as mqttPacket.IPublishPacket);
  // the header's length field grows with the payload: size once, then correct by the difference
  const first = size - 1 - 3 - 2 - topic.length;
  const publish = build(first + size - build(first).length);
  if (publish.length !== size) throw new Error(`built ${publish.length} bytes, wanted ${size}`);
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('neither PINGRESP nor close within 10 s')), 10_000);
    const done = (closed: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(closed);
    };
    parser.on('packet', (p) => p.cmd === 'pingresp' && done(false));
    sock.on('data', (d) => parser.parse(d));
    sock.on('close', () => done(true));
    sock.on('error', () => undefined);
    sock.write(Buffer.concat([connect, publish, mqttPacket.generate({ cmd: 'pingreq' })]));
  });
}

t.test('without max_packet_size: 2,000,000 bytes pass, 2,000,001 close the connection', async (t) => {
  const b = await startTestBroker(t);
  const sub = await connectClient(t, b.mqttUrl, { clientId: 'sub' });
  const got = collect(sub);
  await sub.subscribeAsync('t/big');
  t.equal(await publishOfSize(b.port, 2_000_000), false, 'a packet of exactly the limit is accepted');
  await until(() => got.length === 1, 5000, 'the 2,000,000-byte packet delivered');
  t.equal(await publishOfSize(b.port, 2_000_001), true, 'one byte more: connection closed');
  t.equal(b.broker.config.maxPacketSize, 2_000_000);
});

t.test('max_packet_size 0 still means no limit', async (t) => {
  const b = await startTestBroker(t, 'listener 0 127.0.0.1\nallow_anonymous true\nmax_packet_size 0\n');
  t.equal(await publishOfSize(b.port, 3_000_000), false, '3,000,000 bytes accepted');
});

t.test('Mosquitto 2.0.11 with max_packet_size 2000000 (its 2.1 default): the same line, less its 3 length bytes', async (t) => {
  // Mosquitto 2.0.11 counts the type byte and the remaining length but not the remaining length's own
  // 1-4 bytes; mqprobe counts MQTT 5's "total number of bytes" (docs/security.md)
  const m = await startMosquitto(t, 'allow_anonymous true\nmax_packet_size 2000000\n');
  t.equal(await publishOfSize(m.port, 2_000_003), false, 'the limit plus the 3 length bytes: accepted');
  t.equal(await publishOfSize(m.port, 2_000_004), true, 'one byte more: connection closed');
});
