/**
 * One flooding publisher must not starve everyone else. A raw client floods QoS 0 (64-byte
 * payloads, as fast as its socket takes them) to a subscriber that never reads; a third client
 * meanwhile measures its own publish → delivery round trips (QoS 1, every 100 ms). Mosquitto and
 * mqprobe (default configuration: detection on, no capture sink) run one after the other in the
 * same invocation, each in its own process; reported: round-trip percentiles and the broker's peak RSS.
 *
 *   npx tsx bench/flood/fairness.ts [seconds=10] ['extra mqprobe config line;another']
 */
import { mkdtempSync, chmodSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';
import { mosquittoOnFreePort } from '../harness/brokers.js';
import { freePort, nodeCommand, start, stop, type Started } from '../harness/processes.js';
import { rssKb } from '../harness/proc.js';

const SECONDS = Number(process.argv[2] ?? 10);
/** Extra mqprobe config lines, `;`-separated (e.g. `max_queued_bytes 1048576`), to compare settings. */
const EXTRA = (process.argv[3] ?? '').split(';').filter(Boolean).join('\n');

interface Result {
  broker: string;
  probes: number;
  p50: number;
  p99: number;
  max: number;
  peakRssMB: number;
  flooded: number;
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} never opened`);
}

function rawClient(port: number, id: string): net.Socket {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: id, keepalive: 0 }));
  return s;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;

async function measure(name: string, argv: string[], port: number, dir: string): Promise<Result> {
  const broker: Started = start(argv, { logFile: join(dir, `${name}.log`) });
  try {
    await waitPort(port);
    // a subscriber that subscribes and then never reads again
    const stuck = rawClient(port, 'stuck-sub');
    stuck.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/#', qos: 0 }] }));
    await new Promise((r) => setTimeout(r, 200));
    stuck.pause();
    const flooder = rawClient(port, 'flooder');
    // wait for the CONNACK: this measures the flood, not how a broker treats packets sent before it
    await new Promise((r) => flooder.once('data', r));
    const pkt = mqttPacket.generate({
      cmd: 'publish',
      topic: 'flood/x',
      payload: Buffer.alloc(64, 'f'),
      qos: 0,
      retain: false,
      dup: false,
    });
    const batch = Buffer.concat(Array(256).fill(pkt));
    let flooding = true;
    let flooded = 0;
    const pump = () => {
      while (flooding) {
        flooded += 256;
        if (!flooder.write(batch)) return void flooder.once('drain', pump);
      }
    };
    pump();
    const prober = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'prober', reconnectPeriod: 0 });
    await new Promise<void>((r, j) => (prober.once('connect', () => r()), prober.once('error', j)));
    await prober.subscribeAsync('probe/rtt', { qos: 1 });
    const rtts: number[] = [];
    const sent = new Map<string, number>();
    prober.on('message', (_t, payload) => {
      const at = sent.get(payload.toString());
      if (at !== undefined) rtts.push(performance.now() - at);
    });
    let peak = 0;
    const until = Date.now() + SECONDS * 1000;
    for (let i = 0; Date.now() < until; i++) {
      sent.set(String(i), performance.now());
      prober.publish('probe/rtt', String(i), { qos: 1 });
      peak = Math.max(peak, rssKb(broker.child.pid!) ?? 0);
      await new Promise((r) => setTimeout(r, 100));
    }
    flooding = false;
    await new Promise((r) => setTimeout(r, 2000)); // late round trips still count (as their full time)
    const lost = sent.size - rtts.length;
    const sorted = [...rtts, ...Array(lost).fill(Infinity)].sort((a, b) => a - b);
    prober.end(true);
    flooder.destroy();
    stuck.destroy();
    return {
      broker: name,
      probes: sent.size,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted[sorted.length - 1],
      peakRssMB: peak / 1024,
      flooded,
    };
  } finally {
    await stop(broker, process.env.FLOOD_STOP_SIGNAL === 'SIGTERM' ? 'SIGTERM' : 'SIGKILL');
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mqprobe-flood-'));
  console.log(`logs in ${dir}`);
  chmodSync(dir, 0o755);
  const results: Result[] = [];
  const mosquitto = await mosquittoOnFreePort(dir);
  if (mosquitto) results.push(await measure('mosquitto', mosquitto.argv, mosquitto.port, dir));
  const port = await freePort();
  const conf = join(dir, 'mqprobe.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\n${EXTRA}\n`);
  results.push(
    await measure(
      'mqprobe',
      nodeCommand('app/cli', ['-c', conf], [...BROKER_NODE_FLAGS, ...(process.env.FLOOD_NODE_FLAGS ?? '').split(' ').filter(Boolean)]),
      port,
      dir,
    ),
  );
  const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : 'lost');
  console.log(`flood fairness, ${SECONDS} s per broker: prober round trips (ms) during a QoS 0 flood to a subscriber that never reads`);
  console.log('broker      probes   p50      p99      max      peak RSS MB   flood msgs written');
  for (const r of results)
    console.log(
      `${r.broker.padEnd(11)} ${String(r.probes).padEnd(8)} ${ms(r.p50).padEnd(8)} ${ms(r.p99).padEnd(8)} ${ms(r.max).padEnd(8)} ${r.peakRssMB.toFixed(0).padEnd(13)} ${r.flooded}`,
    );
  if (results.length === 2) console.log(`p50 ratio mqprobe/mosquitto: ${(results[1].p50 / results[0].p50).toFixed(1)}x`);
}

await main();
