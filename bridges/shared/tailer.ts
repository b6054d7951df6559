import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { BeatStore } from '../contract.js';

/** A directory and which of its files to follow. */
export interface TailSource {
  dir: string;
  match(name: string): boolean;
}

/** A followed file. Its identity is the inode, so a renamed (rotated) file keeps its place. */
export interface TailFile {
  /** `<dev>:<ino>`. */
  readonly id: string;
  /** Current name in its directory. */
  readonly name: string;
  readonly path: string;
  /** The source whose match() took the file in. */
  readonly source: TailSource;
  /** Up to maxBytes from the start of the file (e.g. headers), whatever the file is called now. */
  readHead(maxBytes: number): Promise<Buffer>;
}

export type TailEvent = 'opened' | 'renamed' | 'truncated' | 'closed' | 'dir-missing';

export interface TailHandlers {
  /**
   * Complete lines of one file in file order, without line ends, empty lines left out; `offsets[i]`
   * is the byte offset of lines[i]. The file's checkpoint moves past these lines once this resolves;
   * a rejection stops the tailer (run() rejects) with the checkpoint before them.
   */
  lines(file: TailFile, lines: string[], offsets: number[]): Promise<void>;
  /** The file starts over at offset 0 (it was truncated): per-file state is stale. */
  reset?(file: TailFile): void;
  /** The file is no longer followed (gone from its directory and read to its end). */
  forget?(file: TailFile): void;
  /** A line longer than maxLineBytes was skipped. */
  oversized?(file: TailFile, bytes: number, offset: number): void;
  event?(kind: TailEvent, file: TailFile | undefined): void;
}

export interface TailOptions {
  sources: TailSource[];
  /** Where to begin in files present at the first scan that have no checkpoint. */
  start: 'beginning' | 'end';
  maxLineBytes: number;
  store: BeatStore;
  log: Logger;
  /** Directory rescan interval; file system notifications wake the tailer sooner. */
  pollMs?: number;
  /** Checkpoint keys are `<prefix><dev>:<ino>`. */
  keyPrefix?: string;
  /** How long the checkpoint of a file that left its directory is kept (default 60 s). */
  forgetAfterMs?: number;
}

const CHUNK_BYTES = 64 * 1024;
/** Chunks read from one file before the others get their turn. */
const CHUNKS_PER_TURN = 8;
/** Bytes at the start of a file whose hash tells a resumed file from a new one that reuses its inode. */
const FINGERPRINT_BYTES = 256;
/**
 * How long the checkpoint of a file that left its directory is kept by default: a rotation can rename
 * a file between a scan's directory listing and its stat calls, and the file then shows up again under
 * its new name, to be resumed rather than read again.
 */
const FORGET_AFTER_MS = 60_000;

interface Checkpoint {
  /** Offset after the last line handled. */
  o: number;
  /** Fingerprint: hash of the first `l` bytes. */
  h: string;
  l: number;
  /** 1: the checkpoint lies inside a line whose start was skipped (an oversized line, or a start at the end). */
  s?: 1;
  /** Name and directory when saved (for people reading the store). */
  n: string;
  d: string;
}

interface Tracked extends TailFile {
  id: string;
  name: string;
  path: string;
  dir: string;
  fh: FileHandle;
  /** Next byte to read. */
  readPos: number;
  /** Offset after the last complete line handled: what the checkpoint says. */
  committed: number;
  /** The start of an unfinished last line. */
  pending: Buffer[];
  pendingBytes: number;
  /** Inside an oversized line: discard up to the next newline. */
  skipping: boolean;
  fingerprint?: { hash: string; len: number };
  /** Gone from its directory: read to the end, then close. */
  vanished: boolean;
}

/**
 * Follows every matching file in a set of directories, line by line, with checkpoints: rotation
 * (a file renamed away is read to its end while its successor is read from the start), files that
 * appear later, truncation, partial last lines (held until their newline arrives), oversized lines
 * (skipped), and directories that disappear and come back. Checkpoints are byte offsets after the last
 * handled line, keyed by inode and guarded by a fingerprint of the file's first bytes, so a restart
 * neither loses nor repeats lines.
 */
export class Tailer {
  private readonly files = new Map<string, Tracked>();
  private readonly watchers = new Map<string, FSWatcher>();
  private readonly missingDirs = new Set<string>();
  /** Files closed because they left their directory, by id: when (their checkpoints go after forgetAfterMs). */
  private readonly closedAt = new Map<string, number>();
  private readonly prefix: string;
  private readonly pollMs: number;
  private firstScan = true;
  private stopped = false;
  private wake?: () => void;
  private running?: Promise<void>;

  constructor(
    private readonly opts: TailOptions,
    private readonly h: TailHandlers,
  ) {
    this.prefix = opts.keyPrefix ?? 'tail:';
    this.pollMs = opts.pollMs ?? 250;
  }

  /** Runs until stop(); rejects when a handler or the store fails (files are closed either way). */
  run(): Promise<void> {
    this.running ??= this.loop();
    return this.running;
  }

  /** Finishes the batch in hand (its checkpoint included) and closes every file. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running?.catch(() => undefined);
  }

  /** Files followed now (for metrics and tests). */
  get openFiles(): number {
    return this.files.size;
  }

  private async loop(): Promise<void> {
    try {
      while (!this.stopped) {
        await this.scan();
        let progressed = false;
        for (const t of [...this.files.values()]) {
          if (this.stopped) break;
          if (await this.readTurn(t)) progressed = true;
        }
        if (!progressed && !this.stopped) await this.sleep();
      }
    } finally {
      for (const w of this.watchers.values()) w.close();
      this.watchers.clear();
      await Promise.all([...this.files.values()].map((t) => t.fh.close().catch(() => undefined)));
      this.files.clear();
    }
  }

  private sleep(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.pollMs);
      this.wake = done;
    });
  }

  private async scan(): Promise<void> {
    const seen = new Set<string>();
    const scannedDirs = new Set<string>();
    for (const src of this.opts.sources) {
      let names: string[];
      try {
        names = await readdir(src.dir);
      } catch (err) {
        this.dirProblem(src.dir, err as NodeJS.ErrnoException);
        continue;
      }
      scannedDirs.add(src.dir);
      if (this.missingDirs.delete(src.dir)) this.opts.log.info({ dir: src.dir }, `directory ${src.dir} is back`);
      this.watchDir(src.dir);
      for (const name of names) {
        if (!src.match(name)) continue;
        const path = join(src.dir, name);
        const st = await stat(path).catch(() => undefined);
        if (!st?.isFile()) continue;
        const id = `${st.dev}:${st.ino}`;
        seen.add(id);
        const known = this.files.get(id);
        if (known) {
          if (known.path !== path) {
            this.opts.log.info({ from: known.path, to: path }, `followed file renamed: ${known.path} -> ${path}`);
            known.name = name;
            known.path = path;
            known.dir = src.dir;
            this.h.event?.('renamed', known);
          }
          continue;
        }
        await this.follow(id, src, name, path);
      }
    }
    for (const t of this.files.values()) {
      // a directory that cannot be read right now (permissions) keeps its files; one that is gone loses them
      if (!seen.has(t.id) && (scannedDirs.has(t.dir) || this.missingDirs.has(t.dir))) t.vanished = true;
    }
    if (this.firstScan) {
      this.firstScan = false;
      await this.dropStaleCheckpoints(scannedDirs);
    }
    const now = Date.now();
    for (const [id, at] of this.closedAt) {
      if (now - at < (this.opts.forgetAfterMs ?? FORGET_AFTER_MS)) continue;
      this.closedAt.delete(id);
      await this.opts.store.delete(this.prefix + id);
    }
  }

  private dirProblem(dir: string, err: NodeJS.ErrnoException): void {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') {
      if (!this.missingDirs.has(dir)) {
        this.missingDirs.add(dir);
        this.opts.log.warn({ dir }, `directory ${dir} does not exist (yet); waiting for it`);
        this.h.event?.('dir-missing', undefined);
      }
    } else {
      this.opts.log.warn({ dir, err: err.message }, `cannot read directory ${dir}: ${err.code ?? err.message}`);
    }
    this.watchers.get(dir)?.close();
    this.watchers.delete(dir);
  }

  private watchDir(dir: string): void {
    if (this.watchers.has(dir)) return;
    try {
      const w = watch(dir, { persistent: false }, () => this.wake?.());
      w.on('error', () => {
        w.close();
        this.watchers.delete(dir);
      });
      this.watchers.set(dir, w);
    } catch {
      // notifications are only a hint: polling still finds everything
    }
  }

  private async follow(id: string, source: TailSource, name: string, path: string): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch {
      return;
    }
    const st = await fh.stat();
    if (`${st.dev}:${st.ino}` !== id) {
      // replaced between stat and open: the next scan sees the new file
      await fh.close();
      return;
    }
    const t: Tracked = {
      id,
      name,
      path,
      dir: source.dir,
      source,
      fh,
      readPos: 0,
      committed: 0,
      pending: [],
      pendingBytes: 0,
      skipping: false,
      vanished: false,
      readHead: (maxBytes) => readAt(fh, 0, Math.min(maxBytes, CHUNK_BYTES)),
    };
    const saved = parseCheckpoint(await this.opts.store.get(this.prefix + id));
    let from = 'the beginning';
    let resumed = false;
    if (saved && (await fingerprintOf(fh, saved.l)) === saved.h) {
      t.fingerprint = { hash: saved.h, len: saved.l };
      if (saved.o <= st.size) {
        t.readPos = t.committed = saved.o;
        t.skipping = saved.s === 1;
        resumed = true;
        from = `checkpoint ${saved.o}`;
      } else {
        from = 'the beginning (truncated since the checkpoint)';
        this.h.event?.('truncated', t);
      }
    } else if (this.firstScan && this.opts.start === 'end' && st.size > 0) {
      t.readPos = t.committed = st.size;
      // an unfinished last line began before the start: its rest is not a line of its own
      t.skipping = (await readAt(fh, st.size - 1, 1))[0] !== 0x0a;
      from = 'the end';
    }
    this.files.set(id, t);
    this.closedAt.delete(id);
    // saved at once, so that a restart before the first line still resumes here rather than at a later end
    if (!resumed) await this.checkpoint(t);
    this.opts.log.info({ file: path, offset: t.readPos }, `following ${path} from ${from}`);
    this.h.event?.('opened', t);
  }

  private async dropStaleCheckpoints(scannedDirs: Set<string>): Promise<void> {
    for (const key of await this.opts.store.keys(this.prefix)) {
      if (this.files.has(key.slice(this.prefix.length))) continue;
      const cp = parseCheckpoint(await this.opts.store.get(key));
      if (!cp || scannedDirs.has(cp.d)) await this.opts.store.delete(key);
    }
  }

  /** Reads a few chunks of one file; true if anything was read. */
  private async readTurn(t: Tracked): Promise<boolean> {
    const size = (await t.fh.stat()).size;
    if (size < t.readPos) {
      this.opts.log.warn({ file: t.path, size, offset: t.readPos }, `${t.path} was truncated; reading it again from the start`);
      t.readPos = t.committed = 0;
      t.pending = [];
      t.pendingBytes = 0;
      t.skipping = false;
      t.fingerprint = undefined;
      this.h.reset?.(t);
      this.h.event?.('truncated', t);
    }
    let chunks = 0;
    // a vanished file is drained completely: nothing else will ever read its tail
    while (t.readPos < size && (t.vanished || chunks < CHUNKS_PER_TURN) && !this.stopped) {
      const buf = await readAt(t.fh, t.readPos, Math.min(CHUNK_BYTES, size - t.readPos));
      if (buf.length === 0) break;
      await this.consume(t, buf);
      chunks++;
    }
    if (t.vanished && (t.readPos >= size || this.stopped)) await this.close(t);
    return chunks > 0;
  }

  private async close(t: Tracked): Promise<void> {
    this.files.delete(t.id);
    await t.fh.close().catch(() => undefined);
    this.closedAt.set(t.id, Date.now());
    this.opts.log.info({ file: t.path }, `stopped following ${t.path} (gone from ${t.dir})`);
    this.h.forget?.(t);
    this.h.event?.('closed', t);
  }

  /** Splits a chunk into lines, hands them over, then moves the checkpoint. */
  private async consume(t: Tracked, chunk: Buffer): Promise<void> {
    const chunkStart = t.readPos;
    t.readPos += chunk.length;
    const max = this.opts.maxLineBytes;
    const lines: string[] = [];
    const offsets: number[] = [];
    let lineStart = chunkStart - t.pendingBytes;
    let committed = t.committed;
    let pos = 0;
    for (let nl = chunk.indexOf(0x0a, pos); nl !== -1; nl = chunk.indexOf(0x0a, pos)) {
      if (!t.skipping) {
        const length = t.pendingBytes + nl - pos;
        if (length > max) {
          this.h.oversized?.(t, length, lineStart);
        } else {
          const bytes = t.pendingBytes ? Buffer.concat([...t.pending, chunk.subarray(pos, nl)]) : chunk.subarray(pos, nl);
          const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length;
          if (end > 0) {
            lines.push(bytes.toString('utf8', 0, end));
            offsets.push(lineStart);
          }
        }
      }
      t.skipping = false;
      t.pending = [];
      t.pendingBytes = 0;
      pos = nl + 1;
      lineStart = committed = chunkStart + pos;
    }
    if (pos < chunk.length && !t.skipping) {
      const rest = chunk.length - pos;
      if (t.pendingBytes + rest > max) {
        this.h.oversized?.(t, t.pendingBytes + rest, lineStart);
        t.skipping = true;
        t.pending = [];
        t.pendingBytes = 0;
      } else {
        // copied: a view would keep the whole chunk alive
        t.pending.push(Buffer.from(chunk.subarray(pos)));
        t.pendingBytes += rest;
      }
    }
    if (lines.length) await this.h.lines(t, lines, offsets);
    if (committed !== t.committed) {
      t.committed = committed;
      await this.checkpoint(t);
    }
  }

  private async checkpoint(t: Tracked): Promise<void> {
    if (!t.fingerprint || (t.fingerprint.len < FINGERPRINT_BYTES && t.committed > t.fingerprint.len)) {
      const len = Math.min(FINGERPRINT_BYTES, t.committed);
      t.fingerprint = { hash: await fingerprintOf(t.fh, len), len };
    }
    const cp: Checkpoint = {
      o: t.committed,
      h: t.fingerprint.hash,
      l: t.fingerprint.len,
      n: t.name,
      d: t.dir,
      ...(t.skipping ? { s: 1 as const } : {}),
    };
    await this.opts.store.set(this.prefix + t.id, JSON.stringify(cp));
  }
}

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  const { bytesRead } = await fh.read(buf, 0, length, position);
  return buf.subarray(0, bytesRead);
}

async function fingerprintOf(fh: FileHandle, len: number): Promise<string> {
  const head = await readAt(fh, 0, len);
  return createHash('sha256').update(head).digest('base64url');
}

function parseCheckpoint(text: string | undefined): Checkpoint | undefined {
  if (text === undefined) return undefined;
  try {
    const cp = JSON.parse(text) as Checkpoint;
    return Number.isSafeInteger(cp.o) && cp.o >= 0 && typeof cp.h === 'string' && Number.isSafeInteger(cp.l) ? cp : undefined;
  } catch {
    return undefined;
  }
}
