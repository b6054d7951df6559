import type { Registry } from 'prom-client';
import type { BeatView, SinkView } from './api-types.js';

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
 * Capture sinks and beats, read from the /metrics registry the areas above the broker register on
 * (broker/ imports neither capture/ nor bridges/): the view shows what Prometheus sees.
 */
export async function readComponents(registry: Registry): Promise<{ sinks: SinkView[]; beats: BeatView[] }> {
  const [queued, spool, delivered, dropped, failures, up, restarts, records] = await Promise.all([
    byLabel(registry, 'mqprobe_capture_queue_events', 'sink'),
    byLabel(registry, 'mqprobe_capture_spool_bytes', 'sink'),
    byLabel(registry, 'mqprobe_capture_delivered_total', 'sink'),
    byLabel(registry, 'mqprobe_capture_dropped_total', 'sink'),
    byLabel(registry, 'mqprobe_capture_sink_failures_total', 'sink'),
    byLabel(registry, 'mqprobe_beat_up', 'beat'),
    byLabel(registry, 'mqprobe_beat_restarts_total', 'beat'),
    byLabel(registry, 'mqprobe_beat_records_total', 'beat'),
  ]);
  const sinks = [...new Set([...queued.keys(), ...delivered.keys(), ...dropped.keys()])].sort().map((name) => ({
    name,
    queued: queued.get(name) ?? 0,
    spool_bytes: spool.get(name) ?? 0,
    delivered: delivered.get(name) ?? 0,
    dropped: dropped.get(name) ?? 0,
    failures: failures.get(name) ?? 0,
  }));
  const beats = [...up.keys()].sort().map((name) => ({
    name,
    up: up.get(name) === 1,
    restarts: restarts.get(name) ?? 0,
    records: records.get(name) ?? 0,
  }));
  return { sinks, beats };
}
