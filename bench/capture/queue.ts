/**
 * Events per second through one sink's queue on the capture thread's path: the same SinkRunner fed
 * publish-sized ECS lines (about 600 bytes), delivering to a sink that takes every batch at once,
 * with `capture_queue memory` and with `capture_queue disk` (sync interval 1 s, and 0: fdatasync
 * after every write). Measures the queue, not the network: wall time and CPU time of this process
 * from the first offer until the last event is delivered.
 *
 *   npx tsx bench/capture/queue.ts [events=300000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { DiskQueue } from '../../capture/queue/disk.js';
import { SinkRunner } from '../../capture/runner.js';

const N = Number(process.argv[2] ?? 300_000);
const log = pino({ level: 'silent' });
const line = (i: number) =>
  JSON.stringify({
    '@timestamp': new Date().toISOString(),
    ecs: { version: '8.11.0' },
    message: `Client "sensor-${i % 50}" published 64 bytes on "plant/line/${i % 7}/temp" (QoS 0)`,
    event: {
      kind: 'event',
      category: ['network'],
      type: ['info'],
      action: 'publish-received',
      outcome: 'success',
      dataset: 'mqtt.capture',
      id: `6f1c2a90-0d4e-4c5e-9c7e-1f0b2c3d4e5f-${i}`,
      sequence: i,
    },
    observer: { name: 'bench', id: '6f1c2a90', version: '0.0.0' },
    source: { ip: '127.0.0.1', port: 50000 + (i % 1000) },
    network: { protocol: 'mqtt', transport: 'tcp' },
    mqtt: { client_id: `sensor-${i % 50}`, topic: `plant/line/${i % 7}/temp`, qos: 0, retain: false, dup: false, payload_size: 64 },
  });

async function run(mode: 'memory' | 'disk', syncMs: number): Promise<{ perSecond: number; perCpuSecond: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'mqprobe-queue-bench-'));
  let delivered = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const sink = {
    name: 'bench',
    write: async (lines: string[]) => {
      delivered += lines.length;
      if (delivered >= N) done();
    },
    close: async () => {},
  };
  const disk = mode === 'disk' ? new DiskQueue({ dir, run: 'bench', maxBytes: 8 * 1024 ** 3, syncMs, cacheMax: 100_000, log }) : undefined;
  const r = new SinkRunner(sink, {
    queueMax: 100_000,
    disk,
    log,
    backoff: { baseMs: 10, maxMs: 100 },
    onDrops: () => {},
    count: { delivered: () => {}, dropped: () => {}, failure: () => {} },
  });
  const lines = Array.from({ length: 4096 }, (_, i) => line(i));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  // offered in batches of 4096 as the capture thread receives them, yielding between batches
  for (let i = 0; i < N; i += 4096) {
    for (let j = 0; j < 4096 && i + j < N; j++) r.offer(lines[j], i + j + 1);
    await new Promise((res) => setImmediate(res));
  }
  await finished;
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await r.stop(1000);
  rmSync(dir, { recursive: true, force: true });
  return { perSecond: Math.round(N / wall), perCpuSecond: Math.round(N / ((cpu.user + cpu.system) / 1e6)) };
}

for (const [mode, syncMs] of [
  ['memory', 0],
  ['disk', 1000],
  ['disk', 0],
  ['memory', 0],
  ['disk', 1000],
] as const) {
  const r = await run(mode, syncMs);
  console.log(
    `${mode}${mode === 'disk' ? ` sync ${syncMs} ms` : ''}: ${r.perSecond.toLocaleString('en')} events/s, ${r.perCpuSecond.toLocaleString('en')} per CPU-second`,
  );
}
