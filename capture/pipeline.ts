import type { Logger } from 'pino';
import type { CaptureConfig } from './config.js';
import { describe } from './describe.js';
import type { CaptureEvent, CaptureListener } from './event.js';
import type { CaptureMetrics } from './metrics.js';
import { applyPayloadPolicy } from './payload.js';
import type { DropEpisode, SinkRunner } from './runner.js';
import { ecsLine, hicapLine } from './serialize.js';

/** Events finished and serialised together; also the most that wait between two flushes. */
const BATCH = 4096;

export interface PipelineStats {
  /** Events recorded (the latest event.sequence). */
  recorded: number;
  listenerErrors: number;
}

/**
 * The hot half and the batched half of capture. `record()` numbers an event and queues it (no
 * serialisation, no I/O); once per turn of the event loop `flush()` finishes the queued events
 * (time, payload policy, message), shows them to the listeners, serialises each once and offers
 * the line to every sink's runner.
 */
export class Pipeline {
  readonly runners: SinkRunner[] = [];
  private seq = 0;
  private pending: CaptureEvent[] = [];
  private times: number[] = [];
  private scheduled = false;
  private stopped = false;
  private readonly listeners = new Set<CaptureListener>();
  private readonly serialize: (e: CaptureEvent) => string | undefined;
  private readonly s: PipelineStats = { recorded: 0, listenerErrors: 0 };
  private lastMs = -1;
  private lastIso = '';

  constructor(
    private readonly idPrefix: string,
    private readonly config: Pick<CaptureConfig, 'format' | 'payload'>,
    private readonly metrics: CaptureMetrics,
    private readonly log: Logger,
    private readonly makeDropEvent: (ep: DropEpisode) => CaptureEvent,
  ) {
    this.serialize = config.format === 'hicap' ? hicapLine : ecsLine;
  }

  get sequence(): number {
    return this.seq;
  }

  stats(): PipelineStats {
    return { ...this.s, recorded: this.seq };
  }

  subscribe(l: CaptureListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /**
   * The hot path: number the event, queue it, make sure a flush is coming. Aedes can route tens of
   * thousands of QoS 0 publishes in one turn of the event loop (mqemitter drains its backlog in a
   * loop), so a full batch is flushed at once instead of waiting for the turn to end.
   */
  record(e: CaptureEvent): void {
    if (this.stopped) return;
    const seq = ++this.seq;
    e.event.sequence = seq;
    e.event.id = this.idPrefix + seq;
    this.pending.push(e);
    this.times.push(Date.now());
    if (this.pending.length >= BATCH) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** A sink dropped a run of events: record that as a capture-dropped metric event. */
  reportDrops = (ep: DropEpisode): void => {
    this.log.warn({ sink: ep.sink, reason: ep.reason, dropped: ep.count, first: ep.first, last: ep.last }, `capture sink ${ep.sink} dropped ${ep.count} events`);
    if (!this.stopped) this.record(this.makeDropEvent(ep));
  };

  flush = (): void => {
    // after an inline flush a scheduled one may still come: it finds an empty batch, or the next one
    this.scheduled = false;
    const batch = this.pending;
    const times = this.times;
    if (batch.length === 0) return;
    this.pending = [];
    this.times = [];
    const counts = new Map<string, number>();
    // events come in runs of one action (a publish flood): counted per run, not per event
    let runAction = '';
    let runLength = 0;
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i];
      if (!e['@timestamp']) e['@timestamp'] = this.iso(times[i]);
      if (e.mqtt?.payload !== undefined) applyPayloadPolicy(e.mqtt, this.config.payload);
      if (!e.message) e.message = describe(e);
      const a = e.event.action;
      if (a !== runAction) {
        if (runLength) counts.set(runAction, (counts.get(runAction) ?? 0) + runLength);
        runAction = a;
        runLength = 0;
      }
      runLength++;
      for (const l of this.listeners) {
        try {
          l(e);
        } catch (err) {
          if (this.s.listenerErrors++ % 1000 === 0) this.log.error({ err: (err as Error).message, action: a }, 'a capture listener threw; the event is still captured');
        }
      }
      // with no sink (detection alone) nothing is serialised
      if (this.runners.length === 0) continue;
      const line = this.serialize(e);
      if (line === undefined) continue;
      for (const r of this.runners) r.offer(line, e.event.sequence);
    }
    counts.set(runAction, (counts.get(runAction) ?? 0) + runLength);
    for (const [action, n] of counts) this.metrics.events.inc({ action }, n);
  };

  /** Stops taking events: what is queued is flushed to the runners first. */
  close(): void {
    this.flush();
    this.stopped = true;
  }

  private iso(ms: number): string {
    if (ms !== this.lastMs) {
      this.lastMs = ms;
      this.lastIso = new Date(ms).toISOString();
    }
    return this.lastIso;
  }
}
