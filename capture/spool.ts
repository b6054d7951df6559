import { createWriteStream, mkdirSync, readdirSync, statSync, type WriteStream } from 'node:fs';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';

const SEGMENT_BYTES = 4 * 1024 * 1024;
const NAME = /^(\d{16})\.ndjson$/;
const FIRST = 1_000_000_000_000;

interface Segment {
  n: number;
  bytes: number;
}

/** A segment read back for replay; `done()` deletes it, `keep(rest)` leaves only the undelivered lines. */
export interface SpoolChunk {
  lines: string[];
  done(): Promise<void>;
  keep(rest: string[]): Promise<void>;
}

/**
 * A sink's disk spool: append-only segment files (`<16 digits>.ndjson`, one event a line) in one
 * folder, replayed oldest first. Segments left by an earlier run are replayed too. Appends go
 * through a write stream (never a synchronous write on the broker's thread); the byte count
 * includes what is still buffered, so `capture_spool_max_bytes` is a hard bound.
 */
export class Spool {
  private segments: Segment[] = [];
  private active?: { seg: Segment; stream: WriteStream };
  private total = 0;

  constructor(
    readonly dir: string,
    private readonly maxBytes: number,
    private readonly log: Logger,
  ) {
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(dir).sort()) {
      const m = NAME.exec(f);
      if (!m) continue;
      const bytes = statSync(join(dir, f)).size;
      if (bytes === 0) continue;
      this.segments.push({ n: Number(m[1]), bytes });
      this.total += bytes;
    }
    if (this.segments.length)
      log.info(
        { dir, segments: this.segments.length, bytes: this.total },
        'capture spool holds events from an earlier run; replaying them first',
      );
  }

  get bytes(): number {
    return this.total;
  }

  get empty(): boolean {
    return this.total === 0;
  }

  /** Appends one event line; false (and nothing written) when the spool is full. */
  append(line: string): boolean {
    const size = Buffer.byteLength(line) + 1;
    if (this.total + size > this.maxBytes) return false;
    if (!this.active || this.active.seg.bytes >= SEGMENT_BYTES) this.roll();
    const a = this.active!;
    a.stream.write(`${line}\n`);
    a.seg.bytes += size;
    this.total += size;
    return true;
  }

  /** Writes lines as a segment before every other one (what was still in memory at shutdown). */
  async prepend(lines: string[]): Promise<void> {
    if (!lines.length) return;
    const n = (this.segments[0]?.n ?? this.active?.seg.n ?? FIRST) - 1;
    const data = `${lines.join('\n')}\n`;
    await writeFile(this.file(n), data);
    const seg = { n, bytes: Buffer.byteLength(data) };
    this.segments.unshift(seg);
    this.total += seg.bytes;
  }

  /** The oldest segment's lines (the active one is closed first), or undefined when empty. */
  async takeOldest(): Promise<SpoolChunk | undefined> {
    if (!this.segments.length) return undefined;
    const seg = this.segments[0];
    if (this.active?.seg === seg) await this.closeActive();
    const path = this.file(seg.n);
    const text = await readFile(path, 'utf8');
    const lines = text.split('\n').filter((l) => l.length > 0);
    const forget = () => {
      const i = this.segments.indexOf(seg);
      if (i >= 0) this.segments.splice(i, 1);
      this.total -= seg.bytes;
    };
    return {
      lines,
      done: async () => {
        forget();
        await unlink(path).catch((err: NodeJS.ErrnoException) =>
          this.log.error({ path, err: err.message }, 'cannot delete a replayed spool segment'),
        );
      },
      keep: async (rest) => {
        const data = rest.length ? `${rest.join('\n')}\n` : '';
        await writeFile(path, data);
        this.total += Buffer.byteLength(data) - seg.bytes;
        seg.bytes = Buffer.byteLength(data);
      },
    };
  }

  async close(): Promise<void> {
    await this.closeActive();
  }

  private roll(): void {
    void this.closeActive();
    const n = (this.segments.at(-1)?.n ?? FIRST - 1) + 1;
    const seg = { n, bytes: 0 };
    const stream = createWriteStream(this.file(n), { flags: 'a' });
    stream.on('error', (err) => this.log.error({ dir: this.dir, err: err.message }, 'capture spool write failed'));
    this.segments.push(seg);
    this.active = { seg, stream };
  }

  private closeActive(): Promise<void> {
    const a = this.active;
    if (!a) return Promise.resolve();
    this.active = undefined;
    return new Promise((resolve) => a.stream.end(resolve));
  }

  private file(n: number): string {
    return join(this.dir, `${String(n).padStart(16, '0')}.ndjson`);
  }
}
