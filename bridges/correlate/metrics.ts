import { Counter, Gauge, type Registry } from 'prom-client';
import type { Correlator } from './correlator.js';

/** What the metrics read at each scrape: the running correlator and the beat's own counts. */
export interface MetricSource {
  correlator: Correlator;
  /** Rows and records not taken, queries sent and rate-limited, by event name. */
  events: Map<string, number>;
}

/** One source per registry: a restarted beat replaces its predecessor's. */
const sources = new WeakMap<Registry, MetricSource>();

/**
 * `mqprobe_beat_correlate_events_total{event}` (flows attributed, unattributed, unrelated, duplicate;
 * socket rows taken; evictions; rows rejected by reason; queries) and
 * `mqprobe_beat_correlate_tracked{what}` (sockets, pending flows, hosts), read at scrape time.
 */
export function registerCorrelateMetrics(registry: Registry, source: MetricSource): void {
  sources.set(registry, source);
  if (registry.getSingleMetric('mqprobe_beat_correlate_events_total')) return;
  new Counter({
    name: 'mqprobe_beat_correlate_events_total',
    help: 'What the correlator did with flows, socket rows and alerts, by event (since the beat last started).',
    labelNames: ['event'],
    registers: [registry],
    collect() {
      const s = sources.get(registry);
      if (!s) return;
      this.reset();
      for (const [k, v] of Object.entries(s.correlator.counters)) this.inc({ event: kebab(k) }, v);
      for (const [k, v] of s.events) this.inc({ event: k }, v);
    },
  });
  new Gauge({
    name: 'mqprobe_beat_correlate_tracked',
    help: 'Socket rows, pending flows and hosts the correlator holds.',
    labelNames: ['what'],
    registers: [registry],
    collect() {
      const c = sources.get(registry)?.correlator;
      if (!c) return;
      this.set({ what: 'sockets' }, c.trackedSockets);
      this.set({ what: 'pending' }, c.pendingFlows);
      this.set({ what: 'hosts' }, c.knownHosts);
    },
  });
}

/** `socketsEvictedHost` → `sockets-evicted-host`. */
function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
