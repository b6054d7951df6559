/**
 * Scenarios D and E: many clients connect (a bounded number of handshakes at once) and stay
 * connected and idle; measures the connection rate and the broker's memory before and after.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RawClient } from './client.js';
import type { ConnectJob, ConnectResult } from './jobs.js';
import { encodeConnect, PACKET } from './packets.js';
import type { Progress } from './flow.js';
import { cpuMeter, rssKb, selfCpuMeter, waitMeter } from '../proc.js';

/** Connections per source address: below the 28,000 ephemeral ports Linux gives one address by default. */
const PER_SOURCE_ADDRESS = 20_000;

/** 127.0.0.1 for the first 20,000 clients, then 127.0.0.2 and so on (none given below that: the default). */
export const sourceAddress = (i: number, clients: number): string | undefined =>
  clients > PER_SOURCE_ADDRESS ? `127.0.0.${1 + Math.floor(i / PER_SOURCE_ADDRESS)}` : undefined;

interface StormCount {
  clients: RawClient[];
  connected: number;
  refused: number;
  failed: number;
  errors: Set<string>;
  /** When the last CONNACK or failure came. */
  tEnd: number;
}

/** Connects every client, at most `concurrency` handshakes in flight. */
function storm(job: ConnectJob, packets: Buffer[], concurrency: number, progress: Progress): Promise<StormCount> {
  const n: StormCount = { clients: [], connected: 0, refused: 0, failed: 0, errors: new Set(), tEnd: performance.now() };
  let next = 0;
  const ticks = setInterval(() => progress('connecting', n.connected + n.refused + n.failed, job.clients), 250);
  return new Promise<StormCount>((resolve) => {
    const startOne = () => {
      if (next >= job.clients) return;
      const c = new RawClient(job.port, sourceAddress(next, job.clients));
      n.clients.push(c);
      c.request(packets[next++], PACKET.CONNACK)
        .then(
          (rc) => {
            if (rc === 0) n.connected++;
            else {
              n.refused++;
              n.errors.add(`CONNACK return code ${rc}`);
            }
          },
          (err: Error) => {
            n.failed++;
            n.errors.add(err.message);
          },
        )
        .finally(() => {
          n.tEnd = performance.now();
          if (n.connected + n.refused + n.failed === job.clients) {
            clearInterval(ticks);
            resolve(n);
          } else startOne();
        });
    };
    for (let k = 0; k < Math.min(concurrency, job.clients); k++) startOne();
  });
}

/** CONNECT packets for `clients` clients named `<prefix><tag><i>`, encoded before any clock starts. */
function connectPackets(job: ConnectJob, clients: number, tag: string): Buffer[] {
  return Array.from({ length: clients }, (_, i) =>
    encodeConnect({
      clientId: `${job.clientPrefix}${tag}${i}`,
      username: job.username,
      password: job.password,
      protocolVersion: job.protocolVersion,
    }),
  );
}

/** How long the broker gets to close the warm-up's connections before the measured storm. */
const AFTER_WARMUP_MS = 1000;

/** Connects the clients of `packets` before anything is measured; every one must get its CONNACK. */
async function connectAll(job: ConnectJob, packets: Buffer[], when: string, progress: Progress): Promise<RawClient[]> {
  const n = await storm({ ...job, clients: packets.length }, packets, job.concurrency, progress);
  if (n.connected < packets.length) throw new Error(`only ${n.connected} of ${packets.length} clients connected ${when}`);
  return n.clients;
}

export async function runConnect(job: ConnectJob, progress: Progress): Promise<ConnectResult> {
  // encoded before the clock starts: the generator only copies bytes while measuring
  const packets = connectPackets(job, job.clients, 'c');
  let warmupConnected: number | undefined;
  if (job.warmupClients) {
    // other client ids, so the measured storm finds no session to take over
    const warm = await connectAll(job, connectPackets(job, job.warmupClients, 'w'), 'in the warm-up', progress);
    warmupConnected = warm.length;
    for (const c of warm) c.socket.destroy();
    await sleep(AFTER_WARMUP_MS);
  }
  if (job.reconnect) {
    // the outage: every client connected, then every socket reset at once (the broker sees
    // ECONNRESET), and all of them come back at the same moment, as devices do when a network returns
    const before = await connectAll(job, packets, 'before the outage', progress);
    await sleep(job.settleMs);
    for (const c of before) c.socket.resetAndDestroy();
  }
  progress('settling');
  await sleep(job.settleMs);
  const rssBeforeKb = rssKb(job.watch.broker);

  const brokerCpu = cpuMeter(job.watch.broker, job.watch.clockTicks);
  const receiverCpu = cpuMeter(job.watch.receiver, job.watch.clockTicks);
  const selfCpu = selfCpuMeter();
  const brokerWait = waitMeter(job.watch.broker);
  const selfWait = waitMeter(process.pid);
  const t0 = performance.now();
  const { clients, connected, refused, failed, errors, tEnd } = await storm(
    job,
    packets,
    job.reconnect ? job.clients : job.concurrency,
    progress,
  );
  const elapsedMs = tEnd - t0;
  const cpu = { broker: brokerCpu(), receiver: receiverCpu(), generator: selfCpu(), brokerWait: brokerWait(), generatorWait: selfWait() };

  progress('settling');
  await sleep(job.settleMs);
  const rssAfterKb = rssKb(job.watch.broker);
  const dropped = clients.filter((c) => c.closedError).length - refused - failed;
  if (dropped > 0) errors.add(`${dropped} connections closed by the broker after CONNACK`);
  return {
    kind: 'connect',
    clients: job.clients,
    connected: connected - Math.max(0, dropped),
    refused,
    failed,
    elapsedMs,
    connectsPerSec: (connected * 1000) / elapsedMs,
    rssBeforeKb,
    rssAfterKb,
    perConnectionKb:
      rssBeforeKb !== undefined && rssAfterKb !== undefined && connected > 0 ? (rssAfterKb - rssBeforeKb) / connected : undefined,
    cpu,
    errors: [...errors].slice(0, 5),
    warmupConnected,
  };
}
