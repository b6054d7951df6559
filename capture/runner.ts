import type { Logger } from 'pino';
import type { DiskQueue } from './queue/disk.js';
import type { Spool, SpoolChunk } from './spool.js';

/** Where serialised events go. `write` resolves once the batch is delivered, rejects to have it offered again. */
export interface Sink extends SinkIO {
  /** As metrics, logs and the spool folder know it (capture/sinks/index.ts sinkNames). */
  readonly name: string;
}

/** What a sink does, as its factory makes it; createSink() names it. */
export interface SinkIO {
  write(lines: string[]): Promise<void>;
  close(): Promise<void>;
  /** True when writes can never succeed again (the broker of the mqtt sink has closed): stop() does not wait for it. */
  gone?(): boolean;
  /** Events the destination refused for themselves (too large, a mapping conflict), each kept as a pipeline_error record. */
  refused?(): number;
}

/** A run of consecutive events one sink could not keep. */
export interface DropEpisode {
  sink: string;
  reason: 'queue-full' | 'spool-full' | 'shutdown' | 'crash';
  first: number;
  last: number;
  count: number;
  /** For a crash: the earlier run (service.id) the sequence numbers belong to. */
  run?: string;
}

export interface RunnerOptions {
  queueMax: number;
  spool?: Spool;
  /** `capture_queue disk`: the sink's write-ahead queue, instead of the memory queue and the spool. */
  disk?: DiskQueue;
  log: Logger;
  backoff: { baseMs: number; maxMs: number };
  /** Called when a drop episode ends (an event is accepted again, or shutdown). */
  onDrops(ep: DropEpisode): void;
  /** Counted as they happen (prom-client counters). */
  count: { delivered(n: number): void; dropped(reason: DropEpisode['reason'], n: number): void; failure(): void };
}

export interface RunnerStats {
  queued: number;
  spoolBytes: number;
  delivered: number;
  dropped: number;
  failures: number;
  /** True while the last write failed. */
  down: boolean;
  /** The highest event.sequence of this run the sink has taken (0: none yet). */
  acked: number;
  /** Events the destination refused for themselves (SinkIO.refused). */
  refused: number;
}

const BATCH_LINES = 2000;
const BATCH_BYTES = 1024 * 1024;

/**
 * One sink's delivery loop: a bounded memory queue, then the sink's disk spool, then drops.
 * Order is kept: the memory queue always holds older events than the spool, and once anything is
 * spooled every newer event goes to the spool too, until replay has emptied it. A failed write is
 * retried (same batch) after a backoff with jitter.
 */
export class SinkRunner {
  private q: string[] = [];
  private seqs: number[] = [];
  private head = 0;
  private spooling: boolean;
  private replay?: { chunk: SpoolChunk; pos: number };
  private episode?: DropEpisode;
  private wake?: () => void;
  private interrupt?: () => void;
  private closed = false;
  private stopping = false;
  private deadline = Infinity;
  private loop: Promise<void>;
  private readonly s: Omit<RunnerStats, 'refused'> = {
    queued: 0,
    spoolBytes: 0,
    delivered: 0,
    dropped: 0,
    failures: 0,
    down: false,
    acked: 0,
  };

  constructor(
    readonly sink: Sink,
    private readonly o: RunnerOptions,
  ) {
    this.spooling = !!o.spool && !o.spool.empty;
    this.loop = this.run();
  }

  stats(): RunnerStats {
    const disk = this.o.disk;
    const refused = this.sink.refused?.() ?? 0;
    if (disk) return { ...this.s, refused, queued: disk.queued, spoolBytes: disk.bytes };
    return {
      ...this.s,
      refused,
      queued: this.q.length - this.head + (this.replay ? this.replay.chunk.lines.length - this.replay.pos : 0),
      spoolBytes: this.o.spool?.bytes ?? 0,
    };
  }

  /** Takes one event line; never waits. */
  offer(line: string, seq: number): void {
    const disk = this.o.disk;
    if (disk) {
      if (!disk.append(line, seq)) return this.drop(seq, 'queue-full');
      this.reportDrops();
      this.wake?.();
      return;
    }
    const spool = this.o.spool;
    if (!this.spooling && this.q.length - this.head < this.o.queueMax) {
      this.q.push(line);
      this.seqs.push(seq);
    } else if (spool && spool.append(line)) {
      this.spooling = true;
    } else {
      this.drop(seq, spool ? 'spool-full' : 'queue-full');
      return;
    }
    this.reportDrops();
    this.wake?.();
  }

  /**
   * Delivers what is in memory and in the spool until the deadline; then what is left in memory goes
   * to the spool (or is counted as dropped without one) and the spool waits for the next start.
   */
  async stop(deadlineMs: number): Promise<void> {
    this.stopping = true;
    this.deadline = Date.now() + deadlineMs;
    this.wake?.();
    this.interrupt?.();
    // a sink that can never deliver again gets no deadline (its last write may never even settle)
    if (!this.sink.gone?.()) await settleWithin(this.loop, deadlineMs);
    this.interrupt?.();
    await this.sink.close().catch((err: Error) => this.o.log.warn({ err: err.message }, 'closing the sink failed'));
    // a write that never settles (a receiver that stopped reading) is abandoned; its batch is still queued
    await settleWithin(this.loop, this.sink.gone?.() ? 0 : 1000);
    this.closed = true;
    if (this.o.disk) {
      // what the sink has not acknowledged stays in the queue for the next start
      this.o.disk.close();
      this.reportDrops();
      return;
    }
    const rest = this.q.slice(this.head);
    const seqs = this.seqs.slice(this.head);
    this.q = [];
    this.seqs = [];
    this.head = 0;
    if (this.replay) {
      const { chunk, pos } = this.replay;
      this.replay = undefined;
      await chunk.keep(chunk.lines.slice(pos));
    }
    if (rest.length && this.o.spool) {
      await this.o.spool.prepend(rest);
      this.o.log.info({ events: rest.length }, 'capture events still queued at shutdown were spooled for the next start');
    } else if (rest.length) {
      for (const seq of seqs) this.drop(seq, 'shutdown');
      this.o.log.error(
        { events: rest.length, first: seqs[0], last: seqs.at(-1) },
        'capture events still queued at shutdown were dropped (this sink has no spool)',
      );
    }
    this.reportDrops();
    await this.o.spool?.close();
  }

  /** An event that never reached this runner: the capture thread was too far behind the broker. Counted as queue-full. */
  lost(seq: number): void {
    this.drop(seq, 'queue-full');
  }

  private drop(seq: number, reason: DropEpisode['reason']): void {
    this.s.dropped++;
    this.o.count.dropped(reason, 1);
    if (!this.episode) this.episode = { sink: this.sink.name, reason, first: seq, last: seq, count: 0 };
    this.episode.last = seq;
    this.episode.count++;
  }

  /** Reports the drop episode under way, if any (before shutdown, so other sinks still carry it). */
  reportDrops(): void {
    const ep = this.episode;
    if (!ep) return;
    this.episode = undefined;
    this.o.onDrops(ep);
  }

  private async run(): Promise<void> {
    let failures = 0;
    for (;;) {
      const batch = await this.next();
      if (!batch) return;
      try {
        await this.sink.write(batch.lines);
        batch.commit();
        this.s.delivered += batch.lines.length;
        this.o.count.delivered(batch.lines.length);
        if (failures) this.o.log.info({ failures }, `capture sink ${this.sink.name} delivers again`);
        failures = 0;
        this.s.down = false;
      } catch (err) {
        failures++;
        this.s.failures++;
        this.s.down = true;
        this.o.count.failure();
        if (failures === 1 || failures % 20 === 0)
          this.o.log.warn(
            { failures, err: (err as Error).message, queued: this.stats().queued, spoolBytes: this.o.spool?.bytes ?? 0 },
            `capture sink ${this.sink.name} cannot deliver; retrying`,
          );
        if (this.stopping && (Date.now() >= this.deadline || this.sink.gone?.())) return;
        const wait = Math.min(this.o.backoff.maxMs, this.o.backoff.baseMs * 2 ** Math.min(failures - 1, 20));
        await this.sleep(wait / 2 + Math.random() * (wait / 2));
      }
    }
  }

  /** The next batch in order (memory, then spool), waiting for events; undefined ends the loop. */
  private async next(): Promise<{ lines: string[]; commit(): void } | undefined> {
    for (;;) {
      if (this.stopping && Date.now() >= this.deadline) return undefined;
      if (this.o.disk) {
        let b;
        try {
          b = this.fromDisk(this.o.disk);
        } catch (err) {
          // a damaged queue file: this sink stops delivering (its queue fills, then drops are counted); the others go on
          this.o.log.error({ err: (err as Error).message }, `capture sink ${this.sink.name} stops: its disk queue cannot be read`);
          return undefined;
        }
        if (b) return b;
        if (this.stopping) return undefined;
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
        continue;
      }
      const inMemory = this.q.length - this.head;
      if (inMemory > 0) return this.fromMemory();
      if (this.replay) {
        const r = this.replay;
        if (r.pos < r.chunk.lines.length) return this.fromReplay(r);
        this.replay = undefined;
        await r.chunk.done();
        continue;
      }
      const spool = this.o.spool;
      if (spool && !spool.empty) {
        const chunk = await spool.takeOldest();
        if (chunk) this.replay = { chunk, pos: 0 };
        continue;
      }
      this.spooling = false;
      if (this.stopping) return undefined;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }

  private fromDisk(disk: DiskQueue): { lines: string[]; commit(): void } | undefined {
    const recs = disk.peek(BATCH_LINES, BATCH_BYTES);
    if (!recs.length) return undefined;
    return {
      lines: recs.map((r) => r.line),
      commit: () => {
        if (this.closed) return;
        disk.ack(recs);
        // an earlier run's records (sent first) have that run's sequence numbers
        const last = recs.at(-1)!;
        if (last.seg >= disk.thisRunFrom) this.s.acked = last.seq;
      },
    };
  }

  private fromMemory(): { lines: string[]; commit(): void } {
    const end = cut(this.q, this.head);
    const lines = this.q.slice(this.head, end);
    return {
      lines,
      commit: () => {
        if (this.closed) return;
        this.s.acked = this.seqs[end - 1];
        this.head = end;
        if (this.head === this.q.length) {
          this.q = [];
          this.seqs = [];
          this.head = 0;
        } else if (this.head > 65536) {
          this.q = this.q.slice(this.head);
          this.seqs = this.seqs.slice(this.head);
          this.head = 0;
        }
      },
    };
  }

  private fromReplay(r: { chunk: SpoolChunk; pos: number }): { lines: string[]; commit(): void } {
    const end = cut(r.chunk.lines, r.pos);
    return {
      lines: r.chunk.lines.slice(r.pos, end),
      commit: () => {
        if (!this.closed) r.pos = end;
      },
    };
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      // stop() cuts a backoff short (new events do not)
      this.interrupt = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

function settleWithin(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]).finally(() => clearTimeout(timer));
}

/** End index of the batch starting at `from`: at most BATCH_LINES lines and about BATCH_BYTES. */
function cut(lines: string[], from: number): number {
  let bytes = 0;
  let i = from;
  const max = Math.min(lines.length, from + BATCH_LINES);
  while (i < max) {
    bytes += lines[i].length + 1;
    i++;
    if (bytes >= BATCH_BYTES) break;
  }
  return i;
}
