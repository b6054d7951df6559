import type { Registry } from 'prom-client';
import { statusKey, type ComponentStatus, type StatusRegistry } from '../../status.js';
import type { PartView, SinkView } from './api-types.js';

type Values = { labels: Record<string, string | number>; value: number }[];

async function values(registry: Registry, name: string): Promise<Values> {
  const m = registry.getSingleMetric(name);
  return m ? ((await m.get()).values as Values) : [];
}

/** Sums a metric's values by one label. */
async function byLabel(registry: Registry, name: string, label: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const v of await values(registry, name)) {
    const key = v.labels[label];
    if (key !== undefined) out.set(String(key), (out.get(String(key)) ?? 0) + v.value);
  }
  return out;
}

/**
 * Capture sinks, read from the /metrics registry capture registers on (broker/ does not import
 * capture/): the view shows what Prometheus sees.
 */
export async function readSinks(registry: Registry): Promise<SinkView[]> {
  const [queued, spool, delivered, dropped, failures] = await Promise.all([
    byLabel(registry, 'mqprobe_capture_queue_events', 'sink'),
    byLabel(registry, 'mqprobe_capture_spool_bytes', 'sink'),
    byLabel(registry, 'mqprobe_capture_delivered_total', 'sink'),
    byLabel(registry, 'mqprobe_capture_dropped_total', 'sink'),
    byLabel(registry, 'mqprobe_capture_sink_failures_total', 'sink'),
  ]);
  return [...new Set([...queued.keys(), ...delivered.keys(), ...dropped.keys()])].sort().map((name) => ({
    name,
    queued: queued.get(name) ?? 0,
    spool_bytes: spool.get(name) ?? 0,
    delivered: delivered.get(name) ?? 0,
    dropped: dropped.get(name) ?? 0,
    failures: failures.get(name) ?? 0,
  }));
}

/**
 * Beats and bridges from the status registry they report to (broker/status.ts), with their records
 * per second over the last tick.
 */
export class PartTable {
  beats: PartView[] = [];
  bridges: PartView[] = [];
  private counts = new Map<string, number>();

  constructor(private readonly status: StatusRegistry) {}

  tick(seconds: number): void {
    const counts = new Map<string, number>();
    const views = this.status.list().map((p) => {
      const key = statusKey(p.kind, p.name);
      counts.set(key, p.records);
      return partView(p, (p.records - (this.counts.get(key) ?? p.records)) / seconds);
    });
    this.counts = counts;
    this.beats = views.filter((v) => v.kind === 'beat');
    this.bridges = views.filter((v) => v.kind !== 'beat');
  }
}

function partView(p: ComponentStatus, rate: number): PartView {
  return {
    kind: p.kind,
    name: p.name,
    state: p.state,
    records: p.records,
    records_per_s: Math.max(0, rate),
    last_error: p.lastError,
    last_error_at: p.lastErrorAt,
  };
}
