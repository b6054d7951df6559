import {
  closeSync,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
  readFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

/** The file a disk queue writes at open: the run that writes it, and the first segment of that run. */
export const RUN_FILE = 'run';

const NAME = /^(\d{16})\.q$/;
const FIRST = 1_000_000_000_000;
/** Bytes read from a segment at a time when the queue is replayed from disk. */
const READ_BYTES = 1024 * 1024;

/** Where a record starts, or the queue's read position: a segment and a byte offset in it. */
export interface Position {
  seg: number;
  off: number;
}

/** One event in the queue: its line, its event.sequence, where it is on disk and how many bytes it takes there. */
export interface QueuedRecord {
  line: string;
  seq: number;
  seg: number;
  off: number;
  size: number;
}

export interface DiskQueueOptions {
  dir: string;
  /** This run's id (service.id). */
  run: string;
  maxBytes: number;
  /** fsync and checkpoint every this many ms; 0: after every write. */
  syncMs: number;
  /** Records kept in memory as well, so that a sink that keeps up is fed without reading the disk. */
  cacheMax: number;
  log: Logger;
}

/**
 * One sink's write-ahead queue (`capture_queue disk`): every event is appended, with its
 * event.sequence, to a segment file (`<16 digits>.q`, one `<seq>\t<line>` a line) before the sink
 * sees it; the position of the first record the sink has not acknowledged is checkpointed, and a
 * segment is deleted once the sink is past it. Appends are written (write(2), so the kernel has
 * them and a kill -9 cannot lose them) once per turn of the capture thread's event loop and
 * before every batch is read; fdatasync and the checkpoint every `syncMs`, so a machine crash
 * loses at most that much, and a restart sends up to that much again (at-least-once).
 *
 * The records of an earlier run are read back from the checkpoint on: they are sent first, with
 * their own sequence numbers and event.id. This run writes from a new segment on, so
 * `thisRunFrom` tells the two runs apart.
 */
export class DiskQueue {
  private segs: { n: number; bytes: number }[] = [];
  private fd: number;
  private pending: string[] = [];
  private flushScheduled = false;
  private cache: QueuedRecord[] = [];
  private cacheHead = 0;
  /** True while records are on disk that are not in the cache: the next batches are read from disk. */
  private spilled: boolean;
  private head: Position;
  private checkpointed = '';
  private total = 0;
  private unacked = 0;
  private readonly segmentBytes: number;
  private readonly timer?: NodeJS.Timeout;
  /** The first segment this run wrote: records before it are an earlier run's. */
  readonly thisRunFrom: number;

  constructor(private readonly o: DiskQueueOptions) {
    mkdirSync(o.dir, { recursive: true });
    // small bounds (tests) still get several segments, so acknowledged ones can be deleted
    this.segmentBytes = Math.max(4096, Math.min(16 * 1024 * 1024, Math.floor(o.maxBytes / 8)));
    for (const f of readdirSync(o.dir).sort()) {
      const m = NAME.exec(f);
      if (m) this.segs.push({ n: Number(m[1]), bytes: statSync(join(o.dir, f)).size });
    }
    this.repairTail();
    this.head = this.readCheckpoint();
    for (const s of this.segs) this.total += s.bytes;
    this.unacked = this.countFromHead();
    this.thisRunFrom = (this.segs.at(-1)?.n ?? FIRST - 1) + 1;
    this.segs.push({ n: this.thisRunFrom, bytes: 0 });
    this.fd = openSync(this.file(this.thisRunFrom), 'a');
    // the next start learns from it which records are this run's (capture/queue/state.ts)
    writeFileSync(join(o.dir, RUN_FILE), `${o.run} ${this.thisRunFrom}\n`);
    this.spilled = this.unacked > 0;
    this.dropAcknowledgedSegments();
    if (this.unacked)
      o.log.info({ dir: o.dir, events: this.unacked }, 'capture queue holds unacknowledged events of an earlier run; sending them first');
    if (o.syncMs > 0) {
      this.timer = setInterval(() => this.sync(), o.syncMs);
      this.timer.unref();
    }
  }

  /** Events not yet acknowledged (an earlier run's included). */
  get queued(): number {
    return this.unacked;
  }

  /** Bytes of the queue on disk (and about to be). */
  get bytes(): number {
    return this.total;
  }

  /** Appends one event; false (and nothing written) when the queue is at capture_queue_max_bytes. */
  append(line: string, seq: number): boolean {
    const rec = `${seq}\t${line}\n`;
    const size = Buffer.byteLength(rec);
    if (this.total + size > this.o.maxBytes) return false;
    let active = this.segs.at(-1)!;
    if (active.bytes > 0 && active.bytes + size > this.segmentBytes) active = this.roll();
    if (!this.spilled && this.cache.length - this.cacheHead < this.o.cacheMax)
      this.cache.push({ line, seq, seg: active.n, off: active.bytes, size });
    else if (!this.spilled) {
      // from here on batches are read back from disk, from the oldest unacknowledged record
      this.spilled = true;
      this.cache = [];
      this.cacheHead = 0;
    }
    this.pending.push(rec);
    active.bytes += size;
    this.total += size;
    this.unacked++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return true;
  }

  /** The oldest unacknowledged records, at most `maxLines` and about `maxBytes`; the same ones again until ack(). */
  peek(maxLines: number, maxBytes: number): QueuedRecord[] {
    this.flush();
    if (!this.spilled) {
      let end = this.cacheHead;
      for (let bytes = 0; end < this.cache.length && end - this.cacheHead < maxLines && bytes < maxBytes; end++)
        bytes += this.cache[end].size;
      return this.cache.slice(this.cacheHead, end);
    }
    const recs = this.readDisk(maxLines, maxBytes);
    // caught up with the end of the queue: what is appended from now on is fed from memory
    if (recs.length === 0 && this.atEnd()) {
      this.spilled = false;
      this.cache = [];
      this.cacheHead = 0;
    }
    return recs;
  }

  /** The sink has the records peek() gave, up to and including `last`. */
  ack(recs: QueuedRecord[]): void {
    if (!recs.length) return;
    const last = recs.at(-1)!;
    this.head = { seg: last.seg, off: last.off + last.size };
    this.unacked -= recs.length;
    if (!this.spilled) {
      this.cacheHead += recs.length;
      if (this.cacheHead === this.cache.length) {
        this.cache = [];
        this.cacheHead = 0;
      } else if (this.cacheHead > 65536) {
        this.cache = this.cache.slice(this.cacheHead);
        this.cacheHead = 0;
      }
    }
    this.dropAcknowledgedSegments();
    if (this.o.syncMs === 0) this.writeCheckpoint();
  }

  /** Writes what was appended (the kernel has it: a kill -9 of the broker no longer loses it). */
  flush(): void {
    this.flushScheduled = false;
    if (!this.pending.length) return;
    writeSync(this.fd, this.pending.length === 1 ? this.pending[0] : this.pending.join(''));
    this.pending = [];
    if (this.o.syncMs === 0) fdatasyncSync(this.fd);
  }

  /** fdatasync of the active segment and the checkpoint (every capture_queue_sync_interval). */
  sync(): void {
    try {
      this.flush();
      fdatasyncSync(this.fd);
      this.writeCheckpoint();
    } catch (err) {
      this.o.log.error({ dir: this.o.dir, err: (err as Error).message }, 'capture queue sync failed');
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.sync();
    closeSync(this.fd);
  }

  private roll(): { n: number; bytes: number } {
    this.flush();
    closeSync(this.fd);
    const seg = { n: this.segs.at(-1)!.n + 1, bytes: 0 };
    this.segs.push(seg);
    this.fd = openSync(this.file(seg.n), 'a');
    return seg;
  }

  private atEnd(): boolean {
    const last = this.segs.at(-1)!;
    return this.head.seg === last.n && this.head.off >= last.bytes;
  }

  private readDisk(maxLines: number, maxBytes: number): QueuedRecord[] {
    const recs: QueuedRecord[] = [];
    let pos = { ...this.head };
    let bytes = 0;
    while (recs.length < maxLines && bytes < maxBytes) {
      const seg = this.segs.find((s) => s.n >= pos.seg);
      if (!seg) break;
      if (seg.n !== pos.seg) pos = { seg: seg.n, off: 0 };
      if (pos.off >= seg.bytes) {
        if (seg === this.segs.at(-1)) break;
        pos = { seg: pos.seg + 1, off: 0 };
        continue;
      }
      const got = this.readRecords(pos, seg.bytes, maxLines - recs.length);
      for (const r of got) bytes += r.size;
      recs.push(...got);
      const last = got.at(-1);
      if (!last) break;
      pos = { seg: last.seg, off: last.off + last.size };
    }
    return recs;
  }

  /** Whole records of one segment from `pos`, read READ_BYTES at a time (more for a record larger than that). */
  private readRecords(pos: Position, end: number, maxLines: number): QueuedRecord[] {
    const fd = openSync(this.file(pos.seg), 'r');
    try {
      let want = Math.min(READ_BYTES, end - pos.off);
      for (;;) {
        const buf = Buffer.allocUnsafe(want);
        const n = readSync(fd, buf, 0, want, pos.off);
        const text = buf.subarray(0, n);
        const recs: QueuedRecord[] = [];
        let at = 0;
        while (recs.length < maxLines) {
          const nl = text.indexOf(0x0a, at);
          if (nl < 0) break;
          const tab = text.indexOf(0x09, at);
          if (tab < 0 || tab > nl) throw new Error(`capture queue segment ${this.file(pos.seg)} is damaged at byte ${pos.off + at}`);
          recs.push({
            seq: Number(text.toString('latin1', at, tab)),
            line: text.toString('utf8', tab + 1, nl),
            seg: pos.seg,
            off: pos.off + at,
            size: nl + 1 - at,
          });
          at = nl + 1;
        }
        if (recs.length || n < want || want >= end - pos.off) return recs;
        want = Math.min(want * 2, end - pos.off);
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Cuts a record left half-written at the end of the last segment (a crash during the write). */
  private repairTail(): void {
    const s = this.segs.findLast((x) => x.bytes > 0);
    if (!s) return;
    const fd = openSync(this.file(s.n), 'r+');
    try {
      const last = Buffer.alloc(1);
      readSync(fd, last, 0, 1, s.bytes - 1);
      if (last[0] === 0x0a) return;
      const from = Math.max(0, s.bytes - READ_BYTES);
      const buf = Buffer.allocUnsafe(s.bytes - from);
      readSync(fd, buf, 0, buf.length, from);
      const keep = from + buf.lastIndexOf(0x0a) + 1;
      this.o.log.warn({ segment: this.file(s.n), bytes: s.bytes - keep }, 'capture queue: cut a record left half-written by a crash');
      ftruncateSync(fd, keep);
      s.bytes = fstatSync(fd).size;
    } finally {
      closeSync(fd);
    }
  }

  private readCheckpoint(): Position {
    const first = { seg: this.segs[0]?.n ?? FIRST, off: 0 };
    try {
      const [seg, off] = readFileSync(join(this.o.dir, 'checkpoint'), 'utf8').trim().split(' ').map(Number);
      if (!Number.isSafeInteger(seg) || !Number.isSafeInteger(off) || off < 0) throw new Error('not "<segment> <offset>"');
      // a checkpoint into a segment that is gone (deleted after the checkpoint was written) starts at the oldest one left
      return seg < first.seg ? first : { seg, off };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.o.log.error(
          { dir: this.o.dir, err: (err as Error).message },
          'capture queue checkpoint unreadable; sending the whole queue again',
        );
      return first;
    }
  }

  private writeCheckpoint(): void {
    const text = `${this.head.seg} ${this.head.off}\n`;
    if (text === this.checkpointed) return;
    const tmp = join(this.o.dir, 'checkpoint.tmp');
    writeFileSync(tmp, text);
    renameSync(tmp, join(this.o.dir, 'checkpoint'));
    this.checkpointed = text;
  }

  /** Records from the head on (an earlier run's, at start). */
  private countFromHead(): number {
    let n = 0;
    for (const s of this.segs) {
      if (s.n < this.head.seg) continue;
      const from = s.n === this.head.seg ? this.head.off : 0;
      if (from >= s.bytes) continue;
      const fd = openSync(this.file(s.n), 'r');
      try {
        const buf = Buffer.allocUnsafe(READ_BYTES);
        for (let off = from; off < s.bytes;) {
          const got = readSync(fd, buf, 0, Math.min(READ_BYTES, s.bytes - off), off);
          if (got === 0) break;
          for (let i = buf.indexOf(0x0a); i >= 0 && i < got; i = buf.indexOf(0x0a, i + 1)) n++;
          off += got;
        }
      } finally {
        closeSync(fd);
      }
    }
    return n;
  }

  /** Deletes the segments the head is past (never the one being written). */
  private dropAcknowledgedSegments(): void {
    while (this.segs.length > 1) {
      const s = this.segs[0];
      const past = s.n < this.head.seg || (s.n === this.head.seg && this.head.off >= s.bytes);
      if (!past) break;
      this.segs.shift();
      this.total -= s.bytes;
      try {
        unlinkSync(this.file(s.n));
      } catch (err) {
        this.o.log.error({ dir: this.o.dir, err: (err as Error).message }, 'cannot delete an acknowledged capture queue segment');
      }
      if (this.head.seg === s.n) this.head = { seg: this.segs[0].n, off: 0 };
    }
  }

  private file(n: number): string {
    return join(this.o.dir, `${String(n).padStart(16, '0')}.q`);
  }
}
