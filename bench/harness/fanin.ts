/**
 * QoS 0 fan-in against a broker in its own process: 4 publishers flood `bench/fanin` with 64-byte payloads as fast
 * as their sockets take them, 1 subscriber receives. Shared by bench/capture/fanin.ts (capture off/on) and
 * bench/kafka/fanin.ts (no sink, file sink, Kafka sink, beside Mosquitto).
 */
import mqtt, { type MqttClient } from 'mqtt';
import { cpuTicks } from './proc.js';

const PAYLOAD = Buffer.alloc(64, 'p');
const PUBLISHERS = 4;

export interface FanInResult {
  /** Messages/s the subscriber received in the measured window. */
  rate: number;
  /** CPU cores each watched process used in the window (user + system), in the order of `pids`. */
  cores: number[];
  /** Broker CPU (the first pid) per received message, µs. */
  usPerMessage: number;
  /** Messages/s the publishers handed to their sockets in the window (what the broker read, within socket buffers). */
  intake: number;
  /** Broker CPU per published message, µs: what each incoming PUBLISH costs, whether delivered or dropped. */
  usPerPublished: number;
  /** Messages the publishers handed to their sockets, and those the subscriber received, over the whole run. */
  published: number;
  received: number;
}

/** CPU seconds (user + system) a process has used so far, from /proc (100 clock ticks a second on Linux). */
export function cpuSeconds(pid: number): number {
  return (cpuTicks(pid) ?? NaN) / 100;
}

function connect(url: string, clientId: string): Promise<MqttClient> {
  return new Promise((res, rej) => {
    const c = mqtt.connect(url, { clientId, reconnectPeriod: 0 });
    c.once('connect', () => res(c));
    c.once('error', rej);
  });
}

/** Publishes as fast as the socket takes it; counts what it handed over. */
function flood(c: MqttClient, stop: () => boolean, count: () => void): void {
  const stream = (c as unknown as { stream: NodeJS.WritableStream & { writableNeedDrain: boolean } }).stream;
  const pump = () => {
    while (!stop() && !stream.writableNeedDrain) {
      c.publish('bench/fanin', PAYLOAD, { qos: 0 });
      count();
    }
    if (!stop()) stream.once('drain', pump);
  };
  pump();
}

/**
 * Runs the fan-in for `seconds` (the first `warmupS` not measured) against the broker at `url`; `pids[0]` is the
 * broker, further pids (a receiver, …) are metered too. After the flood stops it waits until nothing more
 * arrives for a second, so that `published - received` is what the broker lost.
 */
export async function measureFanIn(url: string, pids: number[], seconds: number, warmupS: number): Promise<FanInResult> {
  const sub = await connect(url, 'sub');
  let received = 0;
  sub.on('message', () => received++);
  await sub.subscribeAsync('bench/fanin', { qos: 0 });
  const pubs = await Promise.all(Array.from({ length: PUBLISHERS }, (_, i) => connect(url, `pub-${i}`)));
  let stopping = false;
  let published = 0;
  for (const p of pubs)
    flood(
      p,
      () => stopping,
      () => published++,
    );
  await new Promise((r) => setTimeout(r, warmupS * 1000));
  const r0 = received;
  const p0 = published;
  const t0 = Date.now();
  const cpu0 = pids.map(cpuSeconds);
  await new Promise((r) => setTimeout(r, (seconds - warmupS) * 1000));
  const wall = (Date.now() - t0) / 1000;
  const inWindow = received - r0;
  const publishedInWindow = published - p0;
  const used = pids.map((pid, i) => cpuSeconds(pid) - cpu0[i]);
  stopping = true;
  // what is still in the sockets and the broker's queues arrives, or is lost
  for (let last = -1; last !== received;) {
    last = received;
    await new Promise((r) => setTimeout(r, 1000));
  }
  for (const c of [...pubs, sub]) c.end(true);
  return {
    rate: inWindow / wall,
    cores: used.map((s) => s / wall),
    usPerMessage: (used[0] * 1e6) / inWindow,
    intake: publishedInWindow / wall,
    usPerPublished: (used[0] * 1e6) / publishedInWindow,
    published,
    received,
  };
}
