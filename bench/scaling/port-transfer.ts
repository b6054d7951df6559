/**
 * What a publish would cost to hand from one engine thread to another over a MessagePort, the
 * emitter docs/scaling.md ("What it would take") proposes in place of Redis: `t_fwd` on the
 * sending thread and `t_recv` on the receiving one, in CPU µs per message, each thread's own CPU
 * time (from /proc/thread-self/stat, read by the thread itself).
 *
 *   npx tsx bench/scaling/port-transfer.ts [messages=2000000] [payloadBytes=64] [batchBytes=32768]
 *
 * The sender builds packets as the engine holds them ({ topic, payload, qos, retain }), encodes
 * them into one buffer per `batchBytes` (a small one stands for a lightly loaded broker, whose
 * batch per turn of its loop is a few messages), and transfers the buffer (no copy); the
 * receiver decodes each entry back into a packet (the payload a view, not a copy) and hands it to a
 * function, as the emitter would to its local mqemitter. At most 8 batches are in flight (the
 * receiver acknowledges each), so the sender cannot run ahead. A first pass builds the same packets
 * and drops them: its CPU per message is subtracted from the sender's, so `t_fwd` is encoding and
 * posting alone. Every message is counted at the receiver.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const IN_FLIGHT = 8;
const TOPICS = Array.from({ length: 8 }, (_, i) => `bench/${i}`);

/** CPU seconds (user + system) of the calling thread. */
function threadCpu(): number {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

interface Packet {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
}

/** Entry: u16 topic length, topic, u8 flags (qos | retain << 2), u32 payload length, payload. */
function encode(p: Packet, out: Buffer, at: number): number {
  const tl = out.write(p.topic, at + 2, 'utf8');
  out.writeUInt16BE(tl, at);
  at += 2 + tl;
  out[at++] = p.qos | (p.retain ? 4 : 0);
  out.writeUInt32BE(p.payload.length, at);
  p.payload.copy(out, at + 4);
  return at + 4 + p.payload.length;
}

function receiver(): void {
  const port = parentPort!;
  let received = 0;
  let checksum = 0;
  const handle = (p: Packet) => (checksum += p.payload[0] + p.topic.length);
  const cpu0 = threadCpu();
  port.on('message', (m: { batch?: Uint8Array; end?: boolean }) => {
    if (m.end) {
      port.postMessage({ received, cpu: threadCpu() - cpu0, checksum });
      return;
    }
    const buf = Buffer.from(m.batch!.buffer, m.batch!.byteOffset, m.batch!.byteLength);
    for (let at = 0; at < buf.length;) {
      const tl = buf.readUInt16BE(at);
      const topic = buf.toString('utf8', at + 2, at + 2 + tl);
      at += 2 + tl;
      const flags = buf[at++];
      const len = buf.readUInt32BE(at);
      handle({ topic, payload: buf.subarray(at + 4, at + 4 + len), qos: (flags & 3) as 0 | 1 | 2, retain: (flags & 4) !== 0 });
      at += 4 + len;
      received++;
    }
    port.postMessage({ ack: 1 });
  });
}

const makePacket = (i: number, payloadBytes: number): Packet => ({
  topic: TOPICS[i & 7],
  payload: Buffer.alloc(payloadBytes, i & 0xff),
  qos: 0,
  retain: false,
});

/** CPU seconds of this thread to build `n` packets and drop them: the part of the sender's time that is not forwarding. */
function baseline(n: number, payloadBytes: number): number {
  const cpu0 = threadCpu();
  let keep = 0;
  for (let i = 0; i < n; i++) keep += makePacket(i, payloadBytes).payload.length;
  if (keep !== n * payloadBytes) throw new Error('baseline miscounted');
  return threadCpu() - cpu0;
}

async function sender(n: number, payloadBytes: number, batchBytes: number): Promise<void> {
  const build = baseline(n, payloadBytes);
  // from the TypeScript source the thread registers tsx first (Node 20 does not pass --import on to threads)
  const boot = import.meta.url.endsWith('.ts')
    ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`
    : `import(${JSON.stringify(import.meta.url)})`;
  const worker = new Worker(boot, { eval: true, workerData: { role: 'receiver' } });
  await new Promise((r) => worker.once('online', r));
  let inFlight = 0;
  let wake: (() => void) | undefined;
  worker.on('message', (m: { ack?: number }) => {
    if (m.ack) {
      inFlight--;
      wake?.();
    }
  });
  const wall0 = performance.now();
  const cpu0 = threadCpu();
  let out = Buffer.allocUnsafe(batchBytes);
  let at = 0;
  const flush = () => {
    const batch = new Uint8Array(out.buffer, out.byteOffset, at);
    worker.postMessage({ batch }, [out.buffer as ArrayBuffer]);
    inFlight++;
    out = Buffer.allocUnsafe(batchBytes);
    at = 0;
  };
  for (let i = 0; i < n; i++) {
    const p = makePacket(i, payloadBytes);
    if (at + 7 + Buffer.byteLength(p.topic) + p.payload.length > batchBytes) {
      flush();
      while (inFlight >= IN_FLIGHT) await new Promise<void>((r) => (wake = r));
    }
    at = encode(p, out, at);
  }
  if (at) flush();
  while (inFlight > 0) await new Promise<void>((r) => (wake = r));
  const sendCpu = threadCpu() - cpu0;
  const wall = (performance.now() - wall0) / 1000;
  const done = new Promise<{ received: number; cpu: number }>((r) =>
    worker.on('message', (m: { received?: number; cpu: number }) => m.received !== undefined && r(m as { received: number; cpu: number })),
  );
  worker.postMessage({ end: true });
  const { received, cpu } = await done;
  await worker.terminate();
  const us = (s: number) => ((s * 1e6) / n).toFixed(3);
  process.stdout.write(
    `${n.toLocaleString('en-US')} messages of ${payloadBytes} bytes, batches of ${batchBytes} bytes, in ${wall.toFixed(2)} s (${Math.round(n / wall).toLocaleString('en-US')}/s), ` +
      `received ${received.toLocaleString('en-US')}\n` +
      `t_fwd (encode + post, sender thread, building the packets subtracted): ${us(sendCpu - build)} µs per message\n` +
      `t_recv (decode + hand over, receiver thread): ${us(cpu)} µs per message\n` +
      `load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}\n`,
  );
  if (received !== n) {
    process.stderr.write(`lost ${n - received} messages\n`);
    process.exitCode = 1;
  }
}

if (isMainThread) {
  const [n = '2000000', payloadBytes = '64', batchBytes = '32768'] = process.argv.slice(2);
  await sender(Number(n), Number(payloadBytes), Number(batchBytes));
} else if ((workerData as { role?: string }).role === 'receiver') receiver();
