/**
 * Does memory come back after large messages? Four QoS 0 publishes of SIZE MB, twice, to one
 * subscriber that reads everything (bytes counted, not parsed), against Mosquitto and mqprobe (both
 * with max_packet_size 268435455, mqprobe with an HTTP listener so the SSE history is on). Reported:
 * the broker's RSS before, at its peak, and 5 s after each round.
 *
 *   npx tsx bench/memory/large-messages.ts [size MB=250]
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqttPacket from 'mqtt-packet';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';
import { mosquittoOnFreePort } from '../harness/brokers.js';
import { freePort, nodeCommand, start, stop } from '../harness/processes.js';
import { rssKb } from '../harness/proc.js';

const SIZE = Number(process.argv[2] ?? 250) * 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connect(port: number, id: string): Promise<net.Socket> {
  // generous: a tsx start on a loaded shared machine can take well over 10 s
  for (let i = 0; i < 1200; i++) {
    const s = net.connect(port, '127.0.0.1');
    const ok = await new Promise<boolean>((r) => (s.once('connect', () => r(true)), s.once('error', () => r(false))));
    if (ok) {
      s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: id, keepalive: 0 }));
      await new Promise((r) => s.once('data', r)); // CONNACK
      return s;
    }
    await sleep(50);
  }
  throw new Error(`port ${port} never opened`);
}

async function measure(name: string, argv: string[], port: number, dir: string): Promise<string[]> {
  const broker = start(argv, { logFile: join(dir, `${name}.log`) });
  const rows: string[] = [];
  try {
    const sub = await connect(port, 'big-sub');
    let received = 0;
    sub.on('data', (d) => (received += d.length));
    sub.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'big/#', qos: 0 }] }));
    await sleep(300);
    const pub = await connect(port, 'big-pub');
    const pid = broker.child.pid!;
    const mb = () => (rssKb(pid) ?? 0) / 1024;
    rows.push(`${name.padEnd(10)} baseline ${mb().toFixed(0)} MB`);
    const payload = Buffer.alloc(SIZE, 'b');
    for (let round = 1; round <= 2; round++) {
      let peak = 0;
      const target = received + 4 * SIZE;
      for (let i = 0; i < 4; i++) {
        const packet = mqttPacket.generate({ cmd: 'publish', topic: `big/${i}`, payload, qos: 0, retain: false, dup: false });
        if (!pub.write(packet)) await new Promise((r) => pub.once('drain', r));
      }
      while (received < target) {
        peak = Math.max(peak, mb());
        await sleep(100);
      }
      await sleep(5000);
      rows.push(`${name.padEnd(10)} round ${round}: peak ${peak.toFixed(0)} MB, 5 s after delivery ${mb().toFixed(0)} MB`);
    }
    pub.destroy();
    sub.destroy();
  } finally {
    await stop(broker, 'SIGKILL');
  }
  return rows;
}

const dir = mkdtempSync(join(tmpdir(), 'mqprobe-bigmem-'));
chmodSync(dir, 0o755);
const rows: string[] = [];
const mosquitto = await mosquittoOnFreePort(dir, 'max_packet_size 268435455\n');
if (mosquitto) rows.push(...(await measure('mosquitto', mosquitto.argv, mosquitto.port, dir)));
const port = await freePort();
const httpPort = await freePort();
const conf = join(dir, 'mqprobe.conf');
writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_packet_size 268435455\nhttp_listener ${httpPort} 127.0.0.1\n`);
rows.push(
  ...(await measure(
    'mqprobe',
    nodeCommand('app/cli', ['-c', conf], [...BROKER_NODE_FLAGS, ...(process.env.BIGMEM_NODE_FLAGS ?? '').split(' ').filter(Boolean)]),
    port,
    dir,
  )),
);
console.log(`4 x ${SIZE / 1024 / 1024} MB QoS 0, twice, one reading subscriber:`);
for (const r of rows) console.log(r);
