/**
 * The capture path alone, on one core: events built as the broker hooks build them (publish-received
 * with client, connection and listener), recorded by the pipeline, finished (time, payload policy,
 * message), serialised and offered to a sink runner whose sink only counts lines.
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
import type { ConnInfo } from '../../broker/probe.js';
import { newListener } from '../../broker/config/load.js';

const N = Number(process.argv[2] ?? 2_000_000);
const log = pino({ level: 'silent' });
const factory = new EventFactory({ name: 'bench-host', id: '3f1d6c8e-9a4b-4c21-8f0e-6b2a1d9c7e55', version: '0.1.0' });
const conn: ConnInfo = { listener: newListener(1883, { file: 'bench', line: 1 }), listenerPort: 1883, transport: 'tcp', remoteAddress: '::ffff:127.0.0.1', remotePort: 50123, openedAt: Date.now() };
const clients = Array.from({ length: 4 }, (_, i) => ({ id: `publisher-${i}` }) as never);
const payload = Buffer.alloc(64, 'x');
// as capture/hooks.ts passes them: shared, fixed lists
const NETWORK = fixed(['network']);
const PROTOCOL_ALLOWED = fixed(['protocol', 'allowed']);

function publishEvent(i: number) {
  const e = factory.withClient(factory.make('publish-received', 'event', NETWORK, PROTOCOL_ALLOWED, 'success'), clients[i & 3], conn, undefined);
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
  const metrics = captureMetrics(new Registry(), () => [], () => 0);
  const p = new Pipeline('3f1d6c8e-9a4b-4c21-8f0e-6b2a1d9c7e55-', cfg, metrics, log, () => publishEvent(0));
  let lines = 0;
  let bytes = 0;
  // the pipeline serialises only for sinks: without a runner, one that takes nothing
  if (!withRunner) p.runners.push({ offer: () => {} } as unknown as SinkRunner);
  else {
    p.runners.push(
      new SinkRunner(
        { name: 'count', write: async (l) => void ((lines += l.length), (bytes += l[0].length * l.length)), close: async () => {} },
        { queueMax: 10_000_000, log, backoff: { baseMs: 1, maxMs: 1 }, onDrops: () => {}, count: { delivered() {}, dropped() {}, failure() {} } },
      ),
    );
  }
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < N; i += 1000) {
    for (let j = i; j < i + 1000 && j < N; j++) p.record(publishEvent(j));
    p.flush();
    // let the runner take its batches, as the event loop does in the broker
    if (withRunner) await new Promise((r) => setImmediate(r));
  }
  if (withRunner) while (p.runners[0].stats().queued > 0) await new Promise((r) => setImmediate(r));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  // CPU seconds of this process: the figure "on one core" even when other processes share the machine
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const rate = N / cpuS;
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  console.log(`${label}: ${N} events, ${s.toFixed(2)} s wall (${fmt(N / s)} events/s), ${cpuS.toFixed(2)} s CPU = ${fmt(rate)} events per CPU-second${withRunner ? ` (about ${Math.round(bytes / Math.max(lines, 1))} bytes an event)` : ''}`);
  return rate;
}

await run('record + flush (build, number, time, message, serialise)', false);
await run('record + flush + a sink runner taking every line', true);
