/**
 * Capture: every broker event as one ECS JSON line (docs/capture-events.md), through a bounded
 * pipeline to the configured sinks. The broker hands over a CaptureHandle; detection and beats
 * observe events through `subscribe()` and add their own through `emit()`.
 */
import { actionFilter } from './actions.js';
import { EventFactory } from './build.js';
import type { CaptureEvent, CaptureListener, NoticeListener, PartialEvent } from './event.js';
import { DATASET, ECS_VERSION } from './event.js';
import type { CaptureHandle } from './handle.js';
import { attachHooks } from './hooks.js';
import { captureMetrics } from './metrics.js';
import { Pipeline, type PipelineStats } from './pipeline.js';
import { CaptureThread } from './offload/thread.js';
import type { DropEpisode, RunnerStats } from './runner.js';
import { startRunner } from './runners.js';
import { trackRun } from './queue/run.js';
import { offloaded, sinkNames, sinkTopics } from './sinks/index.js';

export type { CaptureHandle } from './handle.js';
export type { CaptureEvent, CaptureListener, Notice, NoticeListener, PartialEvent } from './event.js';
export type { DropEpisode } from './runner.js';

export interface CaptureStats extends PipelineStats {
  sinks: ({ name: string } & RunnerStats)[];
}

export interface Capture {
  /**
   * Calls `listener` with every recorded event (after its flush: time, payload policy and message
   * are set), in event.sequence order, including events added through `emit()`. The event must not
   * be changed. Returns the unsubscribe function. The first subscriber switches the broker hooks
   * on even when no capture_sink is configured. With `onNotice`, the listener takes
   * publish-received events as notices through it instead (in the same order): while every
   * listener does, no event object is made for a publish unless a sink on this thread needs its
   * line, and with no sink at all the per-client events (connections, subscriptions, denials,
   * disconnects) come as notices too.
   */
  subscribe(listener: CaptureListener, onNotice?: NoticeListener): () => void;
  /**
   * Records an event from outside the broker hooks (detection alerts: `event.kind: "alert"`; beats).
   * Capture fills in `@timestamp` (unless given), ecs, observer, service, event.dataset,
   * event.kind (default `event`), event.id and event.sequence. Not filtered by capture_events.
   * Returns the recorded event, or undefined after stop().
   */
  emit(partial: PartialEvent): CaptureEvent | undefined;
  stats(): CaptureStats;
  /** Resolves once every sink has started (those of the capture thread start with the thread); never rejects. */
  ready(): Promise<void>;
  /**
   * Detaches the hooks, flushes, and gives each sink until the deadline to deliver what it holds;
   * the rest goes to the spool (or is counted as dropped without one). Idempotent.
   */
  stop(deadlineMs?: number): Promise<void>;
}

export interface CaptureOptions {
  /** Reconnect/retry backoff of every sink (defaults: 250 ms doubling to 30 s, with jitter). */
  backoff?: { baseMs: number; maxMs: number };
  /** Where `capture_sink stdout` writes (default process.stdout). */
  stdout?: NodeJS.WritableStream;
  /** Bytes of recent lines a logstash sink sends again after a broken connection (default 256 KiB). */
  resendBytes?: number;
}

/** Starts capture on a broker. Never throws for sink trouble: sinks that cannot deliver retry, spool and count. */
export function startCapture(h: CaptureHandle, opts: CaptureOptions = {}): Capture {
  const cfg = h.config;
  const log = h.log.child({ name: 'capture' });
  const factory = new EventFactory(h.info);
  // denied publishes (captured as publish-denied) and handled $CONTROL messages (logged by command name, payload dropped)
  const ignoredTopics = new Set(['$mqprobe/denied', '$mqprobe/control', ...sinkTopics(cfg.sinks)]);
  const names = sinkNames(cfg.sinks);
  const views: { name: string; stats(): RunnerStats }[] = [];
  const metrics = captureMetrics(
    h.metrics,
    () => views,
    () => p.sequence,
  );

  const dropEvent = (ep: DropEpisode): CaptureEvent => {
    const e = factory.make('capture-dropped', 'metric', ['process'], ['info'], 'failure');
    e.event.reason = ep.reason;
    e.mqprobe = {
      capture: { sink: ep.sink, dropped: ep.count, first_sequence: ep.first, last_sequence: ep.last, ...(ep.run && { run: ep.run }) },
    };
    return e;
  };
  // event.id: the instance and the sequence number
  const idPrefix = `${h.info.id}-`;
  const p = new Pipeline(idPrefix, cfg, metrics, log, dropEvent);
  const backoff = opts.backoff ?? { baseMs: 250, maxMs: 30_000 };

  // before the capture thread opens the disk queues: they hold what the previous run wrote
  const run = trackRun(
    cfg,
    h.info.id,
    names,
    () => views,
    () => p.sequence,
    log,
  );
  const away = cfg.sinks.flatMap((sink, i) => (offloaded(sink) ? [{ sink, name: names[i] }] : []));
  if (away.length)
    p.thread = new CaptureThread({
      config: cfg,
      sinks: away,
      info: h.info,
      idPrefix,
      log,
      metrics,
      backoff,
      resendBytes: opts.resendBytes,
      onDrops: p.reportDrops,
    });
  const env = {
    config: cfg,
    sinkEnv: { broker: h.broker, config: cfg, log, stdout: opts.stdout, resendBytes: opts.resendBytes },
    log,
    backoff,
    run: h.info.id,
    onDrops: p.reportDrops,
  };
  cfg.sinks.forEach((sc, i) => {
    const name = names[i];
    if (!offloaded(sc)) {
      const r = startRunner(sc, name, env, {
        delivered: (n) => metrics.delivered.inc({ sink: name }, n),
        dropped: (reason, n) => metrics.dropped.inc({ sink: name, reason }, n),
        failure: () => metrics.failures.inc({ sink: name }),
      });
      p.runners.push(r);
      views.push({ name, stats: () => r.stats() });
    } else views.push(p.thread!.sinks.find((s) => s.name === name)!);
  });

  for (const gap of run?.gaps ?? []) p.reportDrops(gap);
  p.afterFlush = run?.tick;

  let detach: (() => void) | undefined;
  const hook = () => {
    detach ??= attachHooks(h, factory, {
      wanted: actionFilter(cfg.events),
      keepPayload: cfg.payload.mode !== 'off',
      ignoredTopics,
      record: (e) => p.record(e),
      publishDirect: p.publishDirect,
      notices: p.notices,
      note: p.note,
    });
  };
  if (cfg.sinks.length) {
    hook();
    log.info({ sinks: names, format: cfg.format, payload: cfg.payload.mode, events: cfg.events }, 'capture started');
  }

  let stopping: Promise<void> | undefined;
  return {
    subscribe(listener, onNotice) {
      hook();
      return p.subscribe(listener, onNotice);
    },
    emit(partial) {
      if (stopping) return undefined;
      const e = complete(partial, factory);
      p.record(e);
      return e;
    },
    ready: async () => p.thread?.ready,
    stats: () => ({ ...p.stats(), sinks: views.map((v) => ({ name: v.name, ...v.stats() })) }),
    stop(deadlineMs = 5000) {
      stopping ??= (async () => {
        detach?.();
        p.flush();
        // drop episodes under way become capture-dropped events while the other sinks still take events
        for (const r of p.runners) r.reportDrops();
        await p.thread?.reportDrops();
        p.close();
        await Promise.all([...p.runners.map((r) => r.stop(deadlineMs)), p.thread?.stop(deadlineMs)]);
        run?.stopped();
        log.info({ events: p.sequence }, 'capture stopped');
      })();
      return stopping;
    },
  };
}

/** An emitted event with what every capture event carries. */
function complete(partial: PartialEvent, factory: EventFactory): CaptureEvent {
  const base = factory.make(partial.event.action, partial.event.kind ?? 'event', undefined, undefined);
  const e = { ...base, ...partial, ecs: { version: ECS_VERSION }, observer: base.observer, service: base.service } as CaptureEvent;
  e['@timestamp'] = partial['@timestamp'] ?? '';
  e.message = partial.message ?? '';
  e.event = { ...partial.event, kind: partial.event.kind ?? 'event', action: partial.event.action, dataset: DATASET, id: '', sequence: 0 };
  return e;
}
