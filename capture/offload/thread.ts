import { Worker } from 'node:worker_threads';
import type { ClientHandle } from '../../broker/engine/client.js';
import pino, { type Logger } from 'pino';
import type { ConnInfo } from '../../broker/probe.js';
import type { CaptureConfig, SinkConfig } from '../config.js';
import type { CaptureMetrics } from '../metrics.js';
import type { DropEpisode, RunnerStats } from '../runner.js';
import { BatchWriter } from './batch-writer.js';
import type { FromThread, ThreadInit, ToThread } from './messages.js';
import type { Cut, PublishFacts } from './tape.js';

/**
 * How far the capture thread may fall behind, in bytes of batches (about 1.3 million
 * publish-received events, or 80,000 other events), before the broker's thread counts new events
 * as dropped instead of handing them over: a bound on memory, reached only when the thread gets
 * less CPU than the events need for many seconds.
 */
const IN_FLIGHT_BYTES = 64 * 1024 * 1024;

/**
 * A batch smaller than this waits up to HOLD_MS for more: each postMessage costs the broker's
 * thread about as much as recording a few hundred publishes, and under load a flush comes every
 * few publishes. Quiet brokers hand events over within HOLD_MS.
 */
const POST_BYTES = 32 * 1024;
const HOLD_MS = 5;

export interface ThreadOptions {
  config: CaptureConfig;
  sinks: { sink: SinkConfig; name: string }[];
  info: ThreadInit['info'];
  idPrefix: string;
  log: Logger;
  metrics: CaptureMetrics;
  backoff: { baseMs: number; maxMs: number };
  resendBytes?: number;
  onDrops(ep: DropEpisode): void;
}

const IDLE: RunnerStats = { queued: 0, spoolBytes: 0, delivered: 0, dropped: 0, failures: 0, down: false, acked: 0, refused: 0 };

/**
 * The broker thread's side of the capture thread (capture/offload/worker.ts): what the pipeline
 * records for the offloaded sinks goes into a batch — a publish-received as its bare facts, any
 * other event as its line — that is handed over once per flush. The sinks' state, counters and
 * log lines come back from the thread.
 */
export class CaptureThread {
  /** The offloaded sinks as /metrics and stats() see them (the thread reports their state). */
  readonly sinks: { name: string; stats(): RunnerStats }[];
  private readonly worker: Worker;
  private readonly batch: BatchWriter;
  /** Events and bytes (tape and lines) handed over, and how many of them the thread has finished with. */
  private sent = { events: 0, bytes: 0 };
  private consumed = { events: 0, bytes: 0 };
  private stats: RunnerStats[];
  private dead = false;
  private stopping = false;
  /** The cut of the latest flush not handed over yet (the batch is held for more), and the timer that hands it over. */
  private held?: Cut;
  private holdTimer?: NodeJS.Timeout;
  private readonly waiting = new Map<'ready' | 'reported' | 'stopped', () => void>();
  /** Resolves once the thread has started its sinks (or has failed). */
  readonly ready: Promise<void>;

  constructor(private readonly o: ThreadOptions) {
    const { sinks: _all, ...config } = o.config;
    const init: ThreadInit = {
      config,
      sinks: o.sinks,
      info: o.info,
      idPrefix: o.idPrefix,
      backoff: o.backoff,
      resendBytes: o.resendBytes,
      logLevel: o.log.level,
    };
    this.batch = new BatchWriter(o.config.payload);
    this.worker = startWorker(init);
    // the thread must not keep a broker process alive that has nothing else to do
    this.worker.unref();
    this.stats = o.sinks.map(() => IDLE);
    this.sinks = o.sinks.map((s, i) => ({ name: s.name, stats: () => this.stats[i] }));
    this.ready = new Promise((resolve) => this.waiting.set('ready', resolve));
    this.worker.on('message', (m: FromThread) => this.receive(m));
    this.worker.on('error', (err) => this.die(`capture thread failed: ${err.message}`));
    this.worker.on('exit', (code) => {
      if (!this.stopping) this.die(`capture thread exited (code ${code})`);
    });
  }

  /** Records a publish-received as its facts; true when the batch is large enough to be handed over now. */
  publish(
    seq: number,
    ms: number,
    c: ClientHandle,
    conn: ConnInfo | undefined,
    user: string | undefined,
    p: PublishFacts,
    payload: Buffer,
  ): boolean {
    if (this.behind()) this.batch.skip(seq);
    else this.batch.publish(seq, ms, c, conn, user, p, payload);
    return this.batch.full;
  }

  /** Holds the place of an event whose line `line()` gives at flush time. */
  marker(seq: number): void {
    this.batch.marker(seq);
  }

  /** The line of the oldest event marked and not yet given a line; undefined: the format has none. */
  line(line: string | undefined): void {
    this.batch.line(line, this.behind());
  }

  /** Where the batch stands when a flush begins: the events it finishes are the ones marked before. */
  cut(): Cut {
    return this.batch.cut();
  }

  /**
   * Hands the batch over up to the cut (at a flush of the pipeline): events recorded while the
   * flush ran (a listener's alert) get their lines in the next flush and go with that batch. A
   * small batch is held for up to HOLD_MS so that one message carries many flushes.
   */
  post(cut: Cut = this.batch.cut()): void {
    if (cut.len < POST_BYTES && !this.stopping) {
      if (cut.records === 0) return;
      this.held = cut;
      this.holdTimer ??= setTimeout(this.postHeld, HOLD_MS);
      return;
    }
    this.hand(cut);
  }

  private readonly postHeld = (): void => {
    this.holdTimer = undefined;
    if (this.held) this.hand(this.held);
  };

  private hand(cut: Cut): void {
    this.held = undefined;
    const b = this.batch.take(cut);
    if (!b) return;
    if (this.dead) return this.lost(b.records);
    this.sent.events += b.records;
    this.sent.bytes += b.bytes;
    this.worker.postMessage(b, [b.tape]);
  }

  /** Has the runners report the drop episodes under way (before shutdown, while events can still be recorded). */
  reportDrops(): Promise<void> {
    if (this.held) this.hand(this.held);
    return this.ask({ t: 'report-drops' }, 'reported', 5000);
  }

  /** Gives the sinks until the deadline (as the runners' stop does), then ends the thread. */
  async stop(deadlineMs: number): Promise<void> {
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    this.hand(this.batch.cut());
    await this.ask({ t: 'stop', deadlineMs }, 'stopped', deadlineMs + 5000);
    this.stopping = true;
    await this.worker.terminate();
  }

  private ask(m: ToThread, answer: 'reported' | 'stopped', timeoutMs: number): Promise<void> {
    if (this.dead) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.o.log.error(`capture thread did not answer ${m.t} within ${timeoutMs} ms`);
        resolve();
      }, timeoutMs);
      this.waiting.set(answer, () => {
        clearTimeout(timer);
        resolve();
      });
      this.worker.postMessage(m);
    });
  }

  private receive(m: FromThread): void {
    switch (m.t) {
      case 'log':
        return relog(this.o.log, m.line);
      case 'progress': {
        this.consumed = m.consumed;
        this.stats = m.stats;
        const { metrics } = this.o;
        m.stats.forEach((_, i) => {
          const sink = this.o.sinks[i].name;
          if (m.delivered[i]) metrics.delivered.inc({ sink }, m.delivered[i]);
          if (m.failures[i]) metrics.failures.inc({ sink }, m.failures[i]);
        });
        for (const d of m.dropped) metrics.dropped.inc({ sink: this.o.sinks[d.sink].name, reason: d.reason }, d.n);
        return;
      }
      case 'drops':
        return this.o.onDrops(m.ep);
      default: {
        const done = this.waiting.get(m.t);
        this.waiting.delete(m.t);
        done?.();
      }
    }
  }

  private behind(): boolean {
    return this.sent.bytes + this.batch.size - this.consumed.bytes > IN_FLIGHT_BYTES;
  }

  private die(why: string): void {
    if (this.dead) return;
    this.dead = true;
    this.o.log.error({ sinks: this.o.sinks.map((s) => s.name) }, `${why}; events for these sinks are dropped (and counted) from now on`);
    for (const done of this.waiting.values()) done();
    this.waiting.clear();
    this.lost(this.sent.events - this.consumed.events);
  }

  private lost(n: number): void {
    if (n > 0) for (const s of this.o.sinks) this.o.metrics.dropped.inc({ sink: s.name, reason: 'queue-full' }, n);
  }
}

/** The thread's young generation as large as the broker's (3 × the 32 MiB semi-space of broker/node-flags.ts): its events die young too. */
const LIMITS = { maxYoungGenerationSizeMb: 96 };

/**
 * The thread runs the compiled worker.js; from the TypeScript sources (tests, `tsx`) it first
 * registers tsx in the thread, which Node 20 does not carry over from the parent's --import.
 */
function startWorker(init: ThreadInit): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./worker.js', here), { workerData: init, resourceLimits: LIMITS });
  const entry = new URL('./worker.ts', here).href;
  const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { eval: true, workerData: init, resourceLimits: LIMITS });
}

/** A log line of the thread, written by the broker's logger at its level. */
function relog(log: Logger, line: string): void {
  try {
    const { level, msg, name, ...fields } = JSON.parse(line) as { level: number; msg?: string; name?: string };
    const label = pino.levels.labels[level] as 'info' | 'warn' | 'error' | 'debug' | 'trace' | 'fatal' | undefined;
    // the thread's module name becomes a child logger's, so the line carries one `name` (broker/logger.ts)
    (name === undefined ? log : log.child({ name }))[label ?? 'info'](fields, msg);
  } catch {
    log.info(line);
  }
}
