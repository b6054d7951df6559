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

export async function runConnect(job: ConnectJob, progress: Progress): Promise<ConnectResult> {
  // encoded before the clock starts: the generator only copies bytes while measuring
  const packets = Array.from({ length: job.clients }, (_, i) =>
    encodeConnect({
      clientId: `${job.clientPrefix}c${i}`,
      username: job.username,
      password: job.password,
      protocolVersion: job.protocolVersion,
    }),
  );
  progress('settling');
  await sleep(job.settleMs);
  const rssBeforeKb = rssKb(job.watch.broker);

  const clients: RawClient[] = [];
  const errors = new Set<string>();
  let connected = 0;
  let refused = 0;
  let failed = 0;
  let next = 0;
  const brokerCpu = cpuMeter(job.watch.broker, job.watch.clockTicks);
  const receiverCpu = cpuMeter(job.watch.receiver, job.watch.clockTicks);
  const selfCpu = selfCpuMeter();
  const brokerWait = waitMeter(job.watch.broker);
  const selfWait = waitMeter(process.pid);
  const t0 = performance.now();
  let tEnd = t0;
  const ticks = setInterval(() => progress('connecting', connected + refused + failed, job.clients), 250);
  await new Promise<void>((resolve) => {
    const startOne = () => {
      if (next >= job.clients) return;
      const c = new RawClient(job.port);
      clients.push(c);
      c.request(packets[next++], PACKET.CONNACK)
        .then(
          (rc) => {
            if (rc === 0) connected++;
            else {
              refused++;
              errors.add(`CONNACK return code ${rc}`);
            }
          },
          (err: Error) => {
            failed++;
            errors.add(err.message);
          },
        )
        .finally(() => {
          tEnd = performance.now();
          if (connected + refused + failed === job.clients) resolve();
          else startOne();
        });
    };
    for (let k = 0; k < Math.min(job.concurrency, job.clients); k++) startOne();
  });
  clearInterval(ticks);
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
  };
}
