/**
 * The capture path alone, on one core: events built as the broker hooks build them (publish-received
 * with client, connection and listener), recorded by the pipeline, finished (time, payload policy,
 * message), serialised and offered to a sink runner whose sink only counts lines. Then the path of
 * the capture thread: the facts of each publish written into a batch (the broker thread's share)
 * and the batch read back into lines (the capture thread's share), both on this one core.
 *
 *   npx tsx bench/capture/path.ts [events=2000000]
 */
import pino from 'pino';
import { Registry } from 'prom-client';
import { EventFactory } from '../../capture/build.js';
import { defaultCaptureConfig } from '../../capture/config.js';
import { captureMetrics } from '../../capture/metrics.js';
import { Pipeline } from '../../capture/pipeline.js';
import { fixed } from '../../capture/serialize.js';
import { SinkRunner } from '../../capture/runner.js';
import { BatchReader } from '../../capture/offload/batch-reader.js';
import { BatchWriter } from '../../capture/offload/batch-writer.js';
import type { ConnInfo } from '../../broker/probe.js';
import { newListener } from '../../broker/config/load.js';

const N = Number(process.argv[2] ?? 2_000_000);
const log = pino({ level: 'silent' });
const info = { name: 'bench-host', id: '3f1d6c8e-9a4b-4c21-8f0e-6b2a1d9c7e55', version: '0.1.0' };
const factory = new EventFactory(info);
const conn: ConnInfo = {
  listener: newListener(1883, { file: 'bench', line: 1 }),
  listenerPort: 1883,
  transport: 'tcp',
  remoteAddress: '::ffff:127.0.0.1',
  remotePort: 50123,
  openedAt: Date.now(),
};
const clients = Array.from({ length: 4 }, (_, i) => ({ id: `publisher-${i}` }) as never);
const payload = Buffer.alloc(64, 'x');
// as capture/hooks.ts passes them: shared, fixed lists
const NETWORK = fixed(['network']);
const PROTOCOL_ALLOWED = fixed(['protocol', 'allowed']);

function publishEvent(i: number) {
  const e = factory.withClient(
    factory.make('publish-received', 'event', NETWORK, PROTOCOL_ALLOWED, 'success'),
    clients[i & 3],
    conn,
    undefined,
  );
  const m = e.mqtt!;
  m.topic = 'bench/fanin';
  m.qos = 0;
  m.retain = false;
  m.dup = false;
  m.payload_size = payload.length;
  return e;
}

async function run(label: string, withRunner: boolean): Promise<number> {
  const cfg = defaultCaptureConfig();
  cfg.queueMax = 10_000_000;
  const metrics = captureMetrics(
    new Registry(),
    () => [],
    () => 0,
  );
  const p = new Pipeline('3f1d6c8e-9a4b-4c21-8f0e-6b2a1d9c7e55-', cfg, metrics, log, () => publishEvent(0));
  let lines = 0;
  let bytes = 0;
  // the pipeline serialises only for sinks: without a runner, one that takes nothing
  if (!withRunner) p.runners.push({ offer: () => {} } as unknown as SinkRunner);
  else {
    p.runners.push(
      new SinkRunner(
        { name: 'count', write: async (l) => void ((lines += l.length), (bytes += l[0].length * l.length)), close: async () => {} },
        {
          queueMax: 10_000_000,
          log,
          backoff: { baseMs: 1, maxMs: 1 },
          onDrops: () => {},
          count: { delivered() {}, dropped() {}, failure() {} },
        },
      ),
    );
  }
  const m = meter();
  for (let i = 0; i < N; i += 1000) {
    for (let j = i; j < i + 1000 && j < N; j++) p.record(publishEvent(j));
    p.flush();
    // let the runner take its batches, as the event loop does in the broker
    if (withRunner) await new Promise((r) => setImmediate(r));
  }
  if (withRunner) while (p.runners[0].stats().queued > 0) await new Promise((r) => setImmediate(r));
  return m.report(label, withRunner ? ` (about ${Math.round(bytes / Math.max(lines, 1))} bytes an event)` : '');
}

/** Wall and CPU time from now; `report` prints events per CPU-second (this process: "on one core" even when others share the machine). */
function meter() {
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  return {
    report(label: string, extra = ''): number {
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = process.cpuUsage(cpu0);
      const cpuS = (cpu.user + cpu.system) / 1e6;
      const rate = N / cpuS;
      const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
      console.log(
        `${label}: ${N} events, ${s.toFixed(2)} s wall (${fmt(N / s)} events/s), ${cpuS.toFixed(2)} s CPU = ${fmt(rate)} events per CPU-second${extra}`,
      );
      return rate;
    },
  };
}

/** The capture thread's path: facts into batches (broker thread), and with `read`, batches into lines (capture thread). */
function runThreadPath(label: string, read: boolean): number {
  const policy = { mode: 'off' } as const;
  const writer = new BatchWriter(policy);
  const reader = new BatchReader({ info, idPrefix: `${info.id}-` }, { payload: policy, format: 'ecs' });
  const packet = { topic: 'bench/fanin', qos: 0, retain: false, dup: false };
  let lines = 0;
  const m = meter();
  for (let i = 0; i < N; i += 1000) {
    for (let j = i; j < i + 1000 && j < N; j++) writer.publish(j + 1, Date.now(), clients[j & 3], conn, undefined, packet, payload);
    const batch = writer.take(writer.cut())!;
    if (read)
      reader.read(
        batch,
        (l) => void (l && lines++),
        () => {},
      );
  }
  if (read && lines !== N) throw new Error(`${lines} lines for ${N} events`);
  return m.report(label);
}

await run('record + flush (build, number, time, message, serialise)', false);
await run('record + flush + a sink runner taking every line', true);
runThreadPath("capture thread: facts into batches (the broker thread's share)", false);
runThreadPath("capture thread: facts into batches, read back into lines (both threads' shares)", true);
