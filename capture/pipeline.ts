import type { ClientHandle } from '../broker/engine/client.js';
import type { Logger } from 'pino';
import type { ConnInfo } from '../broker/probe.js';
import type { CaptureConfig } from './config.js';
import { Notice, type CaptureEvent, type CaptureListener, type MqttFields, type NoticeListener } from './event.js';
import { Finisher } from './finish.js';
import type { PublishBuilder } from './hooks.js';
import type { CaptureMetrics } from './metrics.js';
import type { CaptureThread } from './offload/thread.js';
import type { PublishFacts } from './offload/tape.js';
import type { DropEpisode, SinkRunner } from './runner.js';
import { lineWriter } from './serialize.js';
import { applyPayloadPolicy } from './payload.js';
import { noticeOf } from './build.js';
import type { PayloadPolicy } from './config.js';

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
 * the line to every sink's runner on this thread and to the capture thread. A publish-received
 * that no sink on this thread needs goes to the capture thread as its bare facts
 * (`publishDirect()`): no line on the broker's thread, and no event object either unless a
 * listener (detection) wants to see it. While every listener takes notices and there is no sink
 * at all (the defaults: detection alone), the hooks hand over the per-client events as notices
 * too (`note()`).
 */
export class Pipeline {
  /** The runners of the sinks on the broker's thread (mqtt, stdout). */
  readonly runners: SinkRunner[] = [];
  /** The capture thread of the other sinks, when there are any. */
  thread?: CaptureThread;
  /** Called after every flush (capture/queue/run.ts keeps the crash state current from it). */
  afterFlush?: () => void;
  private seq = 0;
  private pending: (CaptureEvent | Notice)[] = [];
  private times: number[] = [];
  private scheduled = false;
  private flushing = false;
  private stopped = false;
  /** Each listener, with the function that takes its notices when it takes them so. */
  private readonly listeners = new Map<CaptureListener, NoticeListener | undefined>();
  /** Every listener takes notices: a publish-received becomes a Notice, never an event object. */
  private noticesOnly = false;
  /** The functions that take notices, as a list: the flush walks it once per notice. */
  private takers: NoticeListener[] = [];
  private readonly serialize: (e: CaptureEvent) => string | undefined;
  private readonly s: PipelineStats = { recorded: 0, listenerErrors: 0 };
  private readonly finisher: Finisher;
  private readonly payload: PayloadPolicy;
  /** publish-received events sent as facts only since the last flush (counted there). */
  private direct = 0;
  /** Queued events (for the listeners) whose facts the capture thread already has: no line for them. */
  private readonly viaFacts = new WeakSet<CaptureEvent>();

  constructor(
    private readonly idPrefix: string,
    config: Pick<CaptureConfig, 'format' | 'payload'>,
    private readonly metrics: CaptureMetrics,
    private readonly log: Logger,
    private readonly makeDropEvent: (ep: DropEpisode) => CaptureEvent,
  ) {
    this.serialize = lineWriter(config.format);
    this.finisher = new Finisher(config.payload);
    this.payload = config.payload;
  }

  get sequence(): number {
    return this.seq;
  }

  stats(): PipelineStats {
    return { ...this.s, recorded: this.seq };
  }

  /** `onNotice`: the listener takes the events made notices (capture/event.ts) through it. */
  subscribe(l: CaptureListener, onNotice?: NoticeListener): () => void {
    this.listeners.set(l, onNotice);
    this.listened();
    return () => {
      this.listeners.delete(l);
      this.listened();
    };
  }

  private listened(): void {
    this.takers = [...this.listeners.values()].filter((f) => f !== undefined);
    this.noticesOnly = this.takers.length === this.listeners.size;
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
    this.thread?.marker(seq);
    this.queue(e, Date.now());
  }

  /** True when a hook may hand over its event as a notice: every listener takes notices and no sink needs a line. */
  notices = (): boolean => this.noticesOnly && this.runners.length === 0 && !this.thread;

  /** The hot path of an event made a notice (only while `notices()`): numbered and queued as `record()` does. */
  note = (n: Notice): void => {
    if (this.stopped) return;
    n.seq = ++this.seq;
    n.time = Date.now();
    this.queue(n, n.time);
  };

  /**
   * The hot path of publish-received: true when it was taken as facts — by the capture thread,
   * and by the listeners as a notice when they all take notices, else as the event `build` makes —
   * false when the caller must record the event.
   */
  publishDirect = (
    c: ClientHandle,
    conn: ConnInfo | undefined,
    user: string | undefined,
    p: PublishFacts,
    payload: Buffer,
    build: PublishBuilder,
  ): boolean => {
    const t = this.thread;
    const listening = this.listeners.size > 0;
    // without a capture thread only notices spare the event: a sink on this thread needs its line
    if (this.runners.length > 0 || (!t && !(listening && this.noticesOnly))) return false;
    if (this.stopped) return true;
    const seq = ++this.seq;
    const ms = Date.now();
    const full = t ? t.publish(seq, ms, c, conn, user, p, payload) : false;
    if (!listening) this.direct++;
    const item = !listening
      ? undefined
      : this.noticesOnly
        ? this.publishNotice(seq, ms, c, conn, user, p.topic, payload)
        : this.event(seq, build(c, conn, user, p, payload));
    this.queue(item, ms, full);
    return true;
  };

  /** Queues a numbered event or notice, if any, and makes sure a flush is coming (at once when the batch is full). */
  private queue(item: CaptureEvent | Notice | undefined, ms: number, full = false): void {
    if (item) {
      this.pending.push(item);
      this.times.push(ms);
    }
    if ((full || this.pending.length >= BATCH) && !this.flushing) this.flush();
    else this.schedule();
  }

  /** The publish-received event of facts the capture thread has: the listeners see it, no line is made for it. */
  private event(seq: number, e: CaptureEvent): CaptureEvent {
    e.event.sequence = seq;
    e.event.id = this.idPrefix + seq;
    this.viaFacts.add(e);
    return e;
  }

  /** The notice of a publish: its facts as the event would hold them (client and user from the hook). */
  private publishNotice(
    seq: number,
    ms: number,
    c: ClientHandle,
    conn: ConnInfo | undefined,
    user: string | undefined,
    topic: string,
    payload: Buffer,
  ): Notice {
    const n = noticeOf('publish-received', c, conn, user);
    n.seq = seq;
    n.time = ms;
    n.topic = topic || undefined;
    n.payloadSize = payload.length;
    if (this.payload.mode !== 'off') n.raw = payload;
    return n;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  /** A sink dropped a run of events: record that as a capture-dropped metric event. */
  reportDrops = (ep: DropEpisode): void => {
    this.log.warn(
      { sink: ep.sink, reason: ep.reason, dropped: ep.count, first: ep.first, last: ep.last },
      `capture sink ${ep.sink} dropped ${ep.count} events`,
    );
    if (!this.stopped) this.record(this.makeDropEvent(ep));
  };

  flush = (): void => {
    // a listener that records events while a flush runs gets them into the next flush, never a nested one
    this.flushing = true;
    try {
      this.flushBatch();
    } finally {
      this.flushing = false;
    }
    this.afterFlush?.();
  };

  private flushBatch(): void {
    // after an inline flush a scheduled one may still come: it finds an empty batch, or the next one
    this.scheduled = false;
    const batch = this.pending;
    const times = this.times;
    const cut = this.thread?.cut();
    if (this.direct) {
      this.metrics.events.inc({ action: 'publish-received' }, this.direct);
      this.direct = 0;
    }
    if (batch.length === 0) return this.thread?.post(cut);
    this.pending = [];
    this.times = [];
    const counts = new Map<string, number>();
    // events come in runs of one action (a publish flood): counted per run, not per event
    let runAction = '';
    let runLength = 0;
    for (let i = 0; i < batch.length; i++) {
      const item = batch[i];
      const a = item instanceof Notice ? item.action : item.event.action;
      if (a !== runAction) {
        if (runLength) counts.set(runAction, (counts.get(runAction) ?? 0) + runLength);
        runAction = a;
        runLength = 0;
      }
      runLength++;
      if (item instanceof Notice) this.announce(item);
      else this.finishEvent(item, times[i]);
    }
    counts.set(runAction, (counts.get(runAction) ?? 0) + runLength);
    for (const [action, n] of counts) this.metrics.events.inc({ action }, n);
    this.thread?.post(cut);
  }

  /** A notice to the listeners (all take notices, or it would have been an event); a sink, if any, has its facts. */
  private announce(n: Notice): void {
    if (n.raw) {
      const m: MqttFields = { payload: n.raw };
      applyPayloadPolicy(m, this.payload);
      n.payload = (m.payload as string) || undefined;
      n.payloadEncoding = m.payload_encoding;
      n.raw = undefined;
    }
    // a listener that came after the notice was queued and takes no notices does not see it
    for (const take of this.takers) this.guarded(take, n, n.action);
  }

  /** An event finished, shown to the listeners, serialised and offered to the sinks. */
  private finishEvent(e: CaptureEvent, ms: number): void {
    this.finisher.finish(e, ms);
    for (const l of this.listeners.keys()) this.guarded(l, e, e.event.action);
    // with no sink (detection alone) nothing is serialised; the thread builds its own line from facts
    if ((this.runners.length === 0 && !this.thread) || this.viaFacts.has(e)) return;
    const line = this.serialize(e);
    this.thread?.line(line);
    if (line === undefined) return;
    for (const r of this.runners) r.offer(line, e.event.sequence);
  }

  private guarded<T>(l: (x: T) => void, x: T, action: string): void {
    try {
      l(x);
    } catch (err) {
      if (this.s.listenerErrors++ % 1000 === 0)
        this.log.error({ err: (err as Error).message, action }, 'a capture listener threw; the event is still captured');
    }
  }

  /** Stops taking events: what is queued is flushed to the runners first. */
  close(): void {
    this.flush();
    this.stopped = true;
  }
}
