import { Counter, Gauge, type Registry } from 'prom-client';
import type { RunnerStats } from './runner.js';

export interface CaptureMetrics {
  events: Counter<'action'>;
  delivered: Counter<'sink'>;
  dropped: Counter<'sink' | 'reason'>;
  failures: Counter<'sink'>;
}

/** The capture series on /metrics; queue and spool gauges are read from the runners at scrape time. */
export function captureMetrics(
  registry: Registry,
  runners: () => { name: string; stats(): RunnerStats }[],
  sequence: () => number,
): CaptureMetrics {
  const reuse = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
  const registers = [registry];
  const perSink = (name: string, help: string, read: (s: RunnerStats) => number) =>
    reuse(
      name,
      () =>
        new Gauge({
          name,
          help,
          labelNames: ['sink'],
          registers,
          collect() {
            this.reset();
            for (const r of runners()) this.set({ sink: r.name }, read(r.stats()));
          },
        }),
    );
  perSink('mqprobe_capture_queue_events', "Capture events waiting in a sink's memory queue.", (s) => s.queued);
  perSink('mqprobe_capture_spool_bytes', "Bytes of capture events in a sink's disk spool.", (s) => s.spoolBytes);
  perSink(
    'mqprobe_capture_refused_total',
    'Capture events the destination refused for themselves (over Kafka max.message.bytes, a mapping conflict), each kept as a pipeline_error record.',
    (s) => s.refused,
  );
  reuse(
    'mqprobe_capture_sequence',
    () =>
      new Gauge({
        name: 'mqprobe_capture_sequence',
        help: 'event.sequence of the latest capture event of this broker instance.',
        registers,
        collect() {
          this.set(sequence());
        },
      }),
  );
  return {
    events: reuse(
      'mqprobe_capture_events_total',
      () =>
        new Counter({
          name: 'mqprobe_capture_events_total',
          help: 'Capture events recorded, by event.action.',
          labelNames: ['action'],
          registers,
        }),
    ),
    delivered: reuse(
      'mqprobe_capture_delivered_total',
      () =>
        new Counter({ name: 'mqprobe_capture_delivered_total', help: 'Capture events a sink delivered.', labelNames: ['sink'], registers }),
    ),
    dropped: reuse(
      'mqprobe_capture_dropped_total',
      () =>
        new Counter({
          name: 'mqprobe_capture_dropped_total',
          help: 'Capture events a sink dropped (queue full without spool, spool full, shutdown without spool).',
          labelNames: ['sink', 'reason'],
          registers,
        }),
    ),
    failures: reuse(
      'mqprobe_capture_sink_failures_total',
      () =>
        new Counter({
          name: 'mqprobe_capture_sink_failures_total',
          help: 'Failed sink writes (each retried after a backoff).',
          labelNames: ['sink'],
          registers,
        }),
    ),
  };
}
