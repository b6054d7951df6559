import { mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { BeatStore } from '../contract.js';
import { isJsonObject } from './json-object.js';

/** A BeatStore the frame can flush and close. */
export interface ClosableStore extends BeatStore {
  /** Writes pending changes out (file store) and releases connections. */
  close(): Promise<void>;
}

/** How long a file store gathers changes before writing them (checkpoints change many times a second). */
const FILE_SAVE_DELAY_MS = 500;

/**
 * Keys in memory, saved as one JSON file per beat (`<dir>/mqprobe-beat-<name>.json`), written
 * atomically (temporary file, fsync, rename) at most every half second and on close, so a broker
 * restart finds its checkpoints. A crash loses at most the last half second of changes: a tailing
 * beat then repeats those lines rather than losing any.
 */
export class FileStore implements ClosableStore {
  private readonly data = new Map<string, string>();
  private timer?: NodeJS.Timeout;
  private dirty = false;

  constructor(
    readonly file: string,
    private readonly log: Logger,
  ) {
    let text: string | undefined;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text !== undefined) this.load(text);
  }

  static forBeat(dir: string, beat: string, log: Logger): FileStore {
    mkdirSync(dir, { recursive: true });
    return new FileStore(join(dir, `mqprobe-beat-${beat}.json`), log);
  }

  private load(text: string): void {
    try {
      const obj = JSON.parse(text) as unknown;
      if (!isJsonObject(obj)) throw new Error('not a JSON object');
      for (const [k, v] of Object.entries(obj)) if (typeof v === 'string') this.data.set(k, v);
    } catch (err) {
      // keep the unreadable file for inspection and start afresh rather than refusing to run
      const aside = `${this.file}.corrupt-${Date.now()}`;
      renameSync(this.file, aside);
      this.log.warn(
        { file: this.file, moved_to: aside },
        `beat state file ${this.file} is unreadable (${(err as Error).message}); moved aside, starting without checkpoints`,
      );
    }
  }

  async get(key: string): Promise<string | undefined> {
    return this.data.get(key);
  }

  async set(key: string, value: string): Promise<void> {
    if (this.data.get(key) === value) return;
    this.data.set(key, value);
    this.schedule();
  }

  async delete(key: string): Promise<void> {
    if (this.data.delete(key)) this.schedule();
  }

  async keys(prefix: string): Promise<string[]> {
    return [...this.data.keys()].filter((k) => k.startsWith(prefix));
  }

  private schedule(): void {
    this.dirty = true;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.save();
    }, FILE_SAVE_DELAY_MS).unref();
  }

  private save(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const tmp = `${this.file}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.data)));
      const fd = openSync(tmp, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.file);
    } catch (err) {
      this.dirty = true;
      this.log.error({ file: this.file, err: (err as Error).message }, `cannot write beat state file ${this.file}`);
    }
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.save();
  }
}

/** Keys in one Redis hash per beat (`mqprobe:beat:<name>`), shared by every broker process on that Redis. */
export class RedisStore implements ClosableStore {
  private readonly redis: Redis;
  private readonly hash: string;

  constructor(url: string, beat: string, log: Logger) {
    this.hash = `mqprobe:beat:${beat}`;
    this.redis = new Redis(url, { maxRetriesPerRequest: 3, connectionName: `mqprobe-beat-${beat}` });
    // ioredis reconnects by itself; a failing command rejects and the frame restarts the beat
    this.redis.on('error', (err: Error) => log.warn({ err: err.message }, `beat store redis: ${err.message}`));
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.redis.hget(this.hash, key)) ?? undefined;
  }

  async set(key: string, value: string): Promise<void> {
    await this.redis.hset(this.hash, key, value);
  }

  async delete(key: string): Promise<void> {
    await this.redis.hdel(this.hash, key);
  }

  async keys(prefix: string): Promise<string[]> {
    return (await this.redis.hkeys(this.hash)).filter((k) => k.startsWith(prefix));
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
