/**
 * What detection costs: detector throughput on realistic traffic, the capture path with and
 * without detection subscribed (CPU seconds, one core), the defaults' publish path (notices) per
 * publish with and without detection, heap per tracked client, and the heap
 * under a hostile stream of random client ids, addresses, users and topics with the defaults.
 *
 *   node --expose-gc --import tsx bench/detect/cost.ts [hostile events=3000000]
 */
import pino from 'pino';
import { Registry } from 'prom-client';
import { defaultCaptureConfig } from '../../capture/config.js';
import type { CaptureEvent } from '../../capture/event.js';
import { captureMetrics } from '../../capture/metrics.js';
import { Pipeline } from '../../capture/pipeline.js';
import type { ClientHandle } from '../../broker/engine/client.js';
import type { ConnInfo } from '../../broker/probe.js';
import { DetectionEngine, IndicatorList } from '../../detect/index.js';
import { buildScenario, INDICATORS } from './scenario.js';
import { Random } from './random.js';

const HOSTILE = Number(process.argv[2] ?? 3_000_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const MiB = 1048576;
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const cpuSeconds = (from: NodeJS.CpuUsage) => {
  const c = process.cpuUsage(from);
  return (c.user + c.system) / 1e6;
};

/** The normal traffic of 1,000 devices for two hours (no attacks), as capture events. */
function traffic(): CaptureEvent[] {
  return [...buildScenario({ seed: 7, devices: 1000, hours: 2, attacks: false }).sim.run()] as CaptureEvent[];
}

function engine(): DetectionEngine {
  const indicators = IndicatorList.parse(INDICATORS);
  return new DetectionEngine({ indicators: () => indicators });
}

// 1. the defaults' path (no sink, detection alone): publishes handed over as the capture hook does,
// detection taking them as notices; runs of one publisher, as Aedes routes a QoS 0 fan-in. First:
// as in the broker, the detectors have seen only notices (the later parts give them event objects)
{
  const log = pino({ level: 'silent' });
  const N = 400_000;
  const clients = [0, 1, 2, 3].map((i) => ({ id: `bench-pub-${i}` }) as ClientHandle);
  const conn = { remoteAddress: '127.0.0.1', remotePort: 50_000 } as ConnInfo;
  const payload = Buffer.alloc(64, 'p');
  const noEvent = (): never => {
    throw new Error('a notice listener gets no event');
  };
  const run = (detect: boolean): number => {
    const p = new Pipeline(
      'bench-',
      defaultCaptureConfig(),
      captureMetrics(
        new Registry(),
        () => [],
        () => 0,
      ),
      log,
      noEvent,
    );
    // as in the broker without the OpenCTI beat: no indicator set
    const e = new DetectionEngine();
    p.subscribe(() => undefined, detect ? (n) => void e.processObservation(n) : () => undefined);
    const c0 = process.cpuUsage();
    for (let i = 0; i < N; i++) {
      const c = clients[(i >> 6) & 3];
      // a topic string of its own per publish, as the parser makes it
      p.publishDirect(c, conn, undefined, { topic: `bench/${c.id}`, qos: 0, retain: false, dup: false }, payload, noEvent);
    }
    p.flush();
    return (cpuSeconds(c0) * 1e6) / N;
  };
  const rounds = [0, 1, 2, 3, 4].map(() => [run(false), run(true)]);
  const off = Math.min(...rounds.map((r) => r[0]));
  const on = Math.min(...rounds.map((r) => r[1]));
  console.log(
    `the defaults' publish path (notices, no sink): ${off.toFixed(3)} µs per publish with a listener that does nothing, ${on.toFixed(3)} µs with detection (it adds ${(on - off).toFixed(3)} µs)`,
  );
}

// 2. detector throughput
{
  const events = traffic();
  let best = 0;
  for (let run = 0; run < 3; run++) {
    const e = engine();
    const c0 = process.cpuUsage();
    for (const ev of events) e.process(ev);
    best = Math.max(best, events.length / cpuSeconds(c0));
  }
  console.log(`detectors alone: ${fmt(best)} events per CPU-second (${events.length} events of 1,000 devices' traffic, every rule on)`);
}

// 3. the capture path (record, flush: time, message, serialise) with and without detection
{
  const log = pino({ level: 'silent' });
  const run = (detect: boolean): number => {
    const events = traffic();
    const cfg = defaultCaptureConfig();
    cfg.queueMax = 10_000_000;
    const p = new Pipeline(
      'bench-',
      cfg,
      captureMetrics(
        new Registry(),
        () => [],
        () => 0,
      ),
      log,
      () => events[0],
    );
    if (detect) {
      const e = engine();
      p.subscribe((ev) => void e.process(ev));
    }
    const c0 = process.cpuUsage();
    for (let i = 0; i < events.length; i += 1000) {
      for (let j = i; j < i + 1000 && j < events.length; j++) p.record(events[j]);
      p.flush();
    }
    return events.length / cpuSeconds(c0);
  };
  const rounds = [0, 1, 2].map(() => [run(false), run(true)]);
  const off = Math.max(...rounds.map((r) => r[0]));
  const on = Math.max(...rounds.map((r) => r[1]));
  console.log(
    `capture path alone: ${fmt(off)} events per CPU-second; with detection subscribed: ${fmt(on)} (${(((off - on) / off) * 100).toFixed(1)}% fewer; detection adds ${((off / on - 1) * 100).toFixed(1)}% CPU per event)`,
  );
}

// 4. heap per tracked client: devices that connect, subscribe to their command topic and publish
{
  const K = 100_000;
  gc();
  const before = process.memoryUsage().heapUsed;
  const e = engine();
  let t = Date.parse('2026-03-02T10:00:00Z');
  let seq = 0;
  const ev = (action: string, f: Record<string, unknown>) =>
    e.process({ '@timestamp': new Date(t).toISOString(), event: { action, sequence: ++seq }, ...f });
  for (let i = 0; i < K; i++) {
    t += 3;
    const who = { source: { ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }, user: { name: `device-${i}` } };
    ev('client-connected', { ...who, mqtt: { client_id: `dev-${i}` } });
    ev('subscription-granted', {
      ...who,
      mqtt: { client_id: `dev-${i}`, subscriptions: [{ topic: `dev/${i}/cmd`, qos: 1, granted_qos: 1 }] },
    });
    for (let k = 0; k < 3; k++)
      ev('publish-received', { ...who, mqtt: { client_id: `dev-${i}`, topic: `dev/${i}/telemetry`, payload_size: 120 } });
  }
  gc();
  const per = (process.memoryUsage().heapUsed - before) / K;
  console.log(`heap per tracked client (every rule's state for one device: client id, address, user, 2 topics): ${fmt(per)} bytes`);
}

// 5. hostile cardinality with the default max_tracked values
{
  const r = new Random(99);
  const e = engine();
  gc();
  const base = process.memoryUsage().heapUsed;
  let t = Date.parse('2026-03-02T10:00:00Z');
  const marks = new Set([HOSTILE / 8, HOSTILE / 4, HOSTILE / 2, HOSTILE].map(Math.round));
  const heaps: string[] = [];
  const c0 = process.cpuUsage();
  for (let i = 1; i <= HOSTILE; i++) {
    t += 1;
    const ip = `${r.int(1, 223)}.${r.int(0, 255)}.${r.int(0, 255)}.${r.int(0, 255)}`;
    const id = `r${r.hex(12)}`;
    const kind = i & 3;
    const mqtt: Record<string, unknown> = { client_id: id };
    if (kind === 2) mqtt.subscriptions = [{ topic: `t/${r.hex(8)}`, qos: 0, granted_qos: 0 }];
    if (kind === 3) Object.assign(mqtt, { topic: `t/${r.hex(8)}/${r.hex(4)}`, payload_size: r.int(0, 4096) });
    const action = ['client-connected', 'connection-refused', 'subscription-granted', 'publish-received'][kind];
    e.process({
      '@timestamp': new Date(t).toISOString(),
      event: { action, sequence: i, ...(kind === 1 ? { reason: 'bad-credentials' } : {}) },
      source: { ip },
      user: { name: `u${r.hex(6)}` },
      mqtt,
    });
    if (marks.has(i)) {
      gc();
      heaps.push(`${fmt(i)} events: ${((process.memoryUsage().heapUsed - base) / MiB).toFixed(0)} MiB`);
    }
  }
  const cpu = cpuSeconds(c0);
  console.log(
    `hostile stream (every event a new client id, address, user and topic), default max_tracked: heap above the empty engine after ${heaps.join(', ')}; ${fmt(HOSTILE / cpu)} events per CPU-second; ${e.stats.alerts} alerts, ${e.stats.summaries} summaries`,
  );
}
