/**
 * QoS 1 request/response latency with nothing else going on: one mqtt.js client publishes QoS 1 to a
 * topic it subscribes to (QoS 1) and waits for the message before sending the next ("self"); then a
 * requester and a responder answer each other over two topics ("request/response", two hops).
 * Mosquitto and mqprobe run one after the other, each with its default TCP settings (Nagle on); the
 * clients' sockets have TCP_NODELAY, so only the broker's writes are measured;
 * extra mqprobe config lines (`;`-separated) compare settings, e.g. 'set_tcp_nodelay true'.
 *
 *   npx tsx bench/latency/qos1-roundtrip.ts [round trips=300] ['extra mqprobe config line;another']
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';
import { mosquittoOnFreePort } from '../harness/brokers.js';
import { freePort, nodeCommand, start, stop, waitListening } from '../harness/processes.js';

const ROUNDS = Number(process.argv[2] ?? 300);
const EXTRA = (process.argv[3] ?? '').split(';').filter(Boolean).join('\n');

const connect = async (port: number, clientId: string): Promise<MqttClient> => {
  const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId, reconnectPeriod: 0 });
  await new Promise<void>((r, j) => (c.once('connect', () => r()), c.once('error', j)));
  // the clients write at once (TCP_NODELAY), so that only the broker's way of writing is measured
  (c.stream as unknown as Socket).setNoDelay(true);
  return c;
};

/** Times `ROUNDS` sequential QoS 1 round trips: `send(i)` starts one, the resolver fires on its answer. */
async function time(send: (i: number) => void, answered: (cb: (i: number) => void) => void): Promise<number[]> {
  const rtts: number[] = [];
  let done: (() => void) | undefined;
  let sentAt = 0;
  answered(() => {
    rtts.push(performance.now() - sentAt);
    done?.();
  });
  for (let i = 0; i < ROUNDS; i++) {
    const got = new Promise<void>((r) => (done = r));
    sentAt = performance.now();
    send(i);
    await got;
    await new Promise((r) => setTimeout(r, 5)); // a pause, so that every round trip starts from quiet sockets
  }
  return rtts.sort((a, b) => a - b);
}

const pct = (s: number[], p: number) => s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))];

async function measure(name: string, argv: string[], port: number, dir: string): Promise<string[]> {
  const broker = start(argv, { logFile: join(dir, `${name}.log`) });
  try {
    await waitListening(port, broker);
    const self = await connect(port, 'self');
    await self.subscribeAsync('rtt/self', { qos: 1 });
    const selfRtts = await time(
      (i) => self.publish('rtt/self', String(i), { qos: 1 }),
      (cb) => self.on('message', () => cb(0)),
    );
    self.end(true);
    const requester = await connect(port, 'requester');
    const responder = await connect(port, 'responder');
    await requester.subscribeAsync('rtt/response', { qos: 1 });
    await responder.subscribeAsync('rtt/request', { qos: 1 });
    responder.on('message', (_t, p) => responder.publish('rtt/response', p, { qos: 1 }));
    const reqRtts = await time(
      (i) => requester.publish('rtt/request', String(i), { qos: 1 }),
      (cb) => requester.on('message', () => cb(0)),
    );
    requester.end(true);
    responder.end(true);
    const row = (what: string, s: number[]) =>
      `${name.padEnd(10)} ${what.padEnd(18)} p50 ${pct(s, 50).toFixed(2).padStart(7)} ms   p99 ${pct(s, 99).toFixed(2).padStart(7)} ms   max ${s[s.length - 1].toFixed(2).padStart(7)} ms`;
    return [row('self', selfRtts), row('request/response', reqRtts)];
  } finally {
    await stop(broker, 'SIGKILL');
  }
}

const dir = mkdtempSync(join(tmpdir(), 'mqprobe-qos1rtt-'));
chmodSync(dir, 0o755);
const rows: string[] = [];
const mosquitto = await mosquittoOnFreePort(dir);
if (mosquitto) rows.push(...(await measure('mosquitto', mosquitto.argv, mosquitto.port, dir)));
const port = await freePort();
const conf = join(dir, 'mqprobe.conf');
writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\n${EXTRA}\n`);
rows.push(...(await measure('mqprobe', nodeCommand('app/cli', ['-c', conf], BROKER_NODE_FLAGS), port, dir)));
console.log(`QoS 1 round trips, ${ROUNDS} each, one at a time:`);
for (const r of rows) console.log(r);
