/**
 * Scenarios A, B, C and F: numbered messages from publishers to subscribers through the broker,
 * closed loop (an end-to-end window per publisher) or open loop (a fixed offered rate).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connectClient, type RawClient } from './client.js';
import type { FlowJob, FlowResult, Percentiles } from './jobs.js';
import { encodeConnect, encodeSubscribe, PACKET, PUBACK_TEMPLATE, PublishTemplate } from './packets.js';
import { cpuMeter, rssKb, selfCpuMeter, waitMeter } from '../proc.js';

/** Messages per socket write in the closed loop. */
const BATCH = 32;
/** Every subscriber subscribes to this filter; publisher i publishes on bench/<i>. */
export const FLOW_FILTER = 'bench/#';

export type Progress = (phase: string, done?: number, total?: number) => void;

class Subscriber {
  /** Highest sequence seen per publisher (-1: none yet). */
  readonly seen: Float64Array;
  delivered = 0;
  misordered = 0;
  foreign = 0;
  private readonly acks: number[] = [];

  constructor(
    readonly client: RawClient,
    publishers: number,
    payloadBytes: number,
    onMessage: (sentAt: number) => void,
    onChunk: () => void,
  ) {
    this.seen = new Float64Array(publishers).fill(-1);
    client.onPacket((type, flags, buf, start, end) => {
      if (type !== PACKET.PUBLISH) return;
      const p = end - payloadBytes;
      if (p < start + 2) {
        this.foreign++;
        return;
      }
      const pub = buf.readUInt32LE(p);
      if (pub >= publishers) {
        this.foreign++;
        return;
      }
      const seq = buf.readUInt32LE(p + 4);
      if (seq > this.seen[pub]) this.seen[pub] = seq;
      else this.misordered++;
      this.delivered++;
      if (flags & 6) this.acks.push(buf.readUInt16BE(start + 2 + buf.readUInt16BE(start)));
      onMessage(buf.readDoubleLE(p + 8));
    });
    client.afterChunk = () => {
      if (this.acks.length) {
        const out = Buffer.allocUnsafe(this.acks.length * 4);
        for (let i = 0; i < this.acks.length; i++) {
          PUBACK_TEMPLATE.copy(out, i * 4);
          out.writeUInt16BE(this.acks[i], i * 4 + 2);
        }
        this.acks.length = 0;
        client.socket.write(out);
      }
      onChunk();
    };
  }
}

class Publisher {
  sent = 0;
  pubacks = 0;
  blocked = false;

  constructor(
    readonly client: RawClient,
    readonly template: PublishTemplate,
  ) {
    client.onPacket((type) => {
      if (type === PACKET.PUBACK) this.pubacks++;
    });
  }

  /** Writes `n` messages in one buffer; false when the socket asks to wait for 'drain'. */
  send(n: number, now: number): boolean {
    const out = Buffer.allocUnsafe(n * this.template.bytes.length);
    let at = 0;
    for (let k = 0; k < n; k++) at = this.template.writeTo(out, at, this.sent++, now);
    return this.client.socket.write(out);
  }
}

/**
 * Closed loop: each publisher not waiting for 'drain' sends, in writes of BATCH, until `window` of
 * its messages are not yet seen by every subscriber of it (`minSeen(i)`: the lowest sequence they
 * all saw); a socket that asks to wait marks its publisher blocked and calls `pump` on 'drain'.
 * Shared with bench/scaling/instances.ts.
 */
export function refillWindows<P extends { blocked: boolean; sent: number; client: RawClient }>(
  pubs: P[],
  minSeen: (i: number) => number,
  window: number,
  send: (pub: P, n: number) => boolean,
  pump: () => void,
): void {
  for (let i = 0; i < pubs.length; i++) {
    const pub = pubs[i];
    if (pub.blocked) continue;
    let room = window - (pub.sent - (minSeen(i) + 1));
    while (room > 0) {
      const n = Math.min(room, BATCH);
      room -= n;
      if (!send(pub, n)) {
        pub.blocked = true;
        pub.client.socket.once('drain', () => {
          pub.blocked = false;
          pump();
        });
        break;
      }
    }
  }
}

export function percentiles(samples: number[]): Percentiles | undefined {
  if (!samples.length) return undefined;
  const s = Float64Array.from(samples).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999), max: s[s.length - 1], samples: s.length };
}

export async function runFlow(job: FlowJob, progress: Progress): Promise<FlowResult> {
  progress('connecting');
  let pump = () => undefined as void;
  const latencies: number[] = [];
  let windowStart = Infinity;
  let windowEnd = Infinity;
  const onMessage = job.latency
    ? (sentAt: number) => {
        if (sentAt >= windowStart && sentAt < windowEnd) latencies.push(performance.now() - sentAt);
      }
    : () => undefined;

  const subs = await Promise.all(
    Array.from({ length: job.subscribers }, async (_, s) => {
      const c = await connectClient(
        job.port,
        encodeConnect({ clientId: `${job.clientPrefix}s${s}`, protocolVersion: job.protocolVersion }),
      );
      const granted = await c.request(encodeSubscribe(FLOW_FILTER, job.qos, 1, job.protocolVersion), PACKET.SUBACK);
      if (granted !== job.qos) throw new Error(`subscription to ${FLOW_FILTER} at QoS ${job.qos} granted ${granted}`);
      return new Subscriber(c, job.publishers, job.payloadBytes, onMessage, () => pump());
    }),
  );
  const pubs = await Promise.all(
    Array.from({ length: job.publishers }, async (_, i) => {
      const c = await connectClient(
        job.port,
        encodeConnect({ clientId: `${job.clientPrefix}p${i}`, protocolVersion: job.protocolVersion }),
      );
      return new Publisher(c, new PublishTemplate(`bench/${i}`, job.qos, job.payloadBytes, i, job.protocolVersion));
    }),
  );

  const published = () => pubs.reduce((n, p) => n + p.sent, 0);
  const delivered = () => subs.reduce((n, s) => n + s.delivered, 0);
  let sending = true;
  let ticker: NodeJS.Timeout | undefined;
  const t0 = performance.now();
  if (job.rate > 0) {
    let rr = 0;
    ticker = setInterval(() => {
      const now = performance.now();
      const due = Math.floor(((now - t0) * job.rate) / 1000) - published();
      const counts = new Array<number>(pubs.length).fill(0);
      for (let k = 0; k < due; k++) counts[rr++ % pubs.length]++;
      pubs.forEach((p, i) => counts[i] && p.send(counts[i], now));
    }, 1);
  } else {
    const minSeen = (i: number) => {
      let m = Infinity;
      for (const s of subs) m = Math.min(m, s.seen[i]);
      return m;
    };
    const now = (pub: Publisher, n: number) => pub.send(n, performance.now());
    pump = () => {
      if (sending) refillWindows(pubs, minSeen, job.window, now, pump);
    };
    pump();
  }

  progress('warmup');
  await sleep(job.warmupMs);
  const brokerCpu = cpuMeter(job.watch.broker, job.watch.clockTicks);
  const receiverCpu = cpuMeter(job.watch.receiver, job.watch.clockTicks);
  const selfCpu = selfCpuMeter();
  const brokerWait = waitMeter(job.watch.broker);
  const selfWait = waitMeter(process.pid);
  const d0 = delivered();
  const p0 = published();
  windowStart = performance.now();
  const ticks = setInterval(() => progress('measuring', Math.round(performance.now() - windowStart), job.durationMs), 250);
  await sleep(job.durationMs);
  clearInterval(ticks);
  windowEnd = performance.now();
  const windowMs = windowEnd - windowStart;
  const cpu = { broker: brokerCpu(), receiver: receiverCpu(), generator: selfCpu(), brokerWait: brokerWait(), generatorWait: selfWait() };
  const d1 = delivered();
  const p1 = published();
  const brokerRssKb = rssKb(job.watch.broker);

  sending = false;
  clearInterval(ticker);
  progress('draining');
  const total = published();
  const expected = total * subs.length;
  const qos1 = job.qos === 1;
  const done = () => delivered() >= expected && (!qos1 || pubs.every((p) => p.pubacks >= p.sent));
  let last = -1;
  let lastChange = performance.now();
  while (!done() && performance.now() - lastChange < job.drainMs) {
    const now = delivered() + pubs.reduce((n, p) => n + p.pubacks, 0);
    if (now !== last) {
      last = now;
      lastChange = performance.now();
    }
    await sleep(20);
  }

  const errors: string[] = [];
  for (const c of [...subs.map((s) => s.client), ...pubs.map((p) => p.client)]) if (c.closedError) errors.push(c.closedError);
  const foreign = subs.reduce((n, s) => n + s.foreign, 0);
  if (foreign) errors.push(`${foreign} publishes that the generator did not send`);
  const got = delivered();
  return {
    kind: 'flow',
    published: total,
    expected,
    delivered: got,
    lost: Math.max(0, expected - got),
    misordered: subs.reduce((n, s) => n + s.misordered, 0),
    pubacks: pubs.reduce((n, p) => n + p.pubacks, 0),
    windowMs,
    deliveredPerSec: ((d1 - d0) * 1000) / windowMs,
    publishedPerSec: ((p1 - p0) * 1000) / windowMs,
    latencyMs: percentiles(latencies),
    cpu,
    brokerRssKb,
    errors: [...new Set(errors)],
  };
}
