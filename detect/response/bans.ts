import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redisOptions, redactUrl } from '../../broker/engine/persistence/redis-state.js';

/** One ban: `entity` is what the alert was about, `ip 10.0.0.7`, `client pump-7` or `user alice`. */
export interface Ban {
  entity: string;
  rule: string;
  /** ISO times. */
  since: string;
  until: string;
}

export type BanKind = 'ip' | 'client' | 'user';

/** The facts of a CONNECT a ban is checked against. */
export interface Who {
  ip?: string;
  clientId?: string;
  username?: string;
}

/** `ip 10.0.0.7` → ['ip', '10.0.0.7']; undefined for entities no ban applies to (topics, rules). */
export function parseEntity(entity: string): [BanKind, string] | undefined {
  const space = entity.indexOf(' ');
  const kind = entity.slice(0, space);
  const value = entity.slice(space + 1);
  if (space < 1 || value === '' || (kind !== 'ip' && kind !== 'client' && kind !== 'user')) return undefined;
  return [kind, value];
}

/** Where bans outlive the process: a JSON file, Redis (shared by every process of a cluster), or nowhere. */
export interface BanStore {
  load(): Promise<Ban[]>;
  put(ban: Ban): Promise<void>;
  /** True when this call removed it (with Redis: only one process wins, so one announces the lift). */
  remove(entity: string): Promise<boolean>;
  /** Whether other processes share it: then only the process whose remove() removed a ban announces its lift. */
  shared?: boolean;
  /** Another process changed a ban: `changed(entity, ban or undefined when lifted)`. */
  watch?(changed: (entity: string, ban: Ban | undefined) => void): void;
  close(): Promise<void>;
}

/** Most bans held at once: a flood of random addresses must not grow the list without bound. */
export const MAX_BANS = 100_000;

/**
 * The bans in force, looked up synchronously at every CONNECT (a Map lookup per entity kind);
 * the store keeps them across restarts and processes. Expired bans are lifted by `expire()`.
 */
export class BanList {
  private readonly bans = new Map<string, Ban>();
  private readonly listeners: ((change: { entity: string; ban?: Ban; lifted: boolean; here: boolean }) => void)[] = [];

  constructor(private readonly store: BanStore) {}

  async start(): Promise<void> {
    const now = Date.now();
    for (const b of await this.store.load()) if (Date.parse(b.until) > now) this.bans.set(b.entity, b);
    this.store.watch?.((entity, ban) => {
      if (ban) this.bans.set(entity, ban);
      else this.bans.delete(entity);
      this.tell({ entity, ban, lifted: !ban, here: false });
    });
  }

  /** The ban refusing this CONNECT, if any (expired ones are ignored until `expire()` lifts them). */
  find(who: Who, now = Date.now()): Ban | undefined {
    if (this.bans.size === 0) return undefined;
    for (const key of [
      who.ip && `ip ${who.ip}`,
      who.clientId !== undefined && `client ${who.clientId}`,
      who.username !== undefined && `user ${who.username}`,
    ]) {
      const b = key ? this.bans.get(key) : undefined;
      if (b && Date.parse(b.until) > now) return b;
    }
    return undefined;
  }

  list(): Ban[] {
    return [...this.bans.values()];
  }

  get size(): number {
    return this.bans.size;
  }

  /** Adds or extends a ban; false when the list is full. */
  async add(ban: Ban): Promise<boolean> {
    if (!this.bans.has(ban.entity) && this.bans.size >= MAX_BANS) return false;
    this.bans.set(ban.entity, ban);
    await this.store.put(ban);
    this.tell({ entity: ban.entity, ban, lifted: false, here: true });
    return true;
  }

  /** Lifts a ban; true when it was in force here or in the store. */
  async remove(entity: string): Promise<boolean> {
    const had = this.bans.delete(entity);
    const removed = await this.store.remove(entity);
    const here = this.store.shared ? removed : had || removed;
    if (had || removed) this.tell({ entity, lifted: true, here });
    return had || removed;
  }

  /** Lifts the bans whose time is up (a clock tick). */
  async expire(now = Date.now()): Promise<void> {
    for (const b of [...this.bans.values()]) if (Date.parse(b.until) <= now) await this.remove(b.entity);
  }

  onChange(listener: (change: { entity: string; ban?: Ban; lifted: boolean; here: boolean }) => void): void {
    this.listeners.push(listener);
  }

  close(): Promise<void> {
    return this.store.close();
  }

  private tell(change: { entity: string; ban?: Ban; lifted: boolean; here: boolean }): void {
    for (const l of this.listeners) l(change);
  }
}

const isBan = (b: unknown): b is Ban => {
  const o = b as Record<string, unknown> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.entity === 'string' &&
    parseEntity(o.entity) !== undefined &&
    typeof o.rule === 'string' &&
    typeof o.since === 'string' &&
    !Number.isNaN(Date.parse(o.until as string))
  );
};

/** Bans of this process only. */
export const memoryStore = (): BanStore => ({
  load: async () => [],
  put: async () => undefined,
  remove: async () => false,
  close: async () => undefined,
});

/**
 * `persistence true`: the bans in `<persistence_location>/mqprobe-bans.json`, rewritten (to a
 * temporary file, then renamed) at each change. A damaged file is reported and ignored.
 */
export function fileStore(path: string, log: Logger): BanStore {
  const bans = new Map<string, Ban>();
  const save = () => {
    try {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(`${path}.tmp`, JSON.stringify({ bans: [...bans.values()] }));
      renameSync(`${path}.tmp`, path);
    } catch (err) {
      log.error({ err: (err as Error).message }, `cannot save the bans to ${path}`);
    }
  };
  return {
    async load() {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch {
        return [];
      }
      try {
        const list = (JSON.parse(text) as { bans?: unknown }).bans;
        if (!Array.isArray(list)) throw new Error('no "bans" list');
        for (const b of list) if (isBan(b)) bans.set(b.entity, b);
        return [...bans.values()];
      } catch (err) {
        log.error({ err: (err as Error).message }, `ignoring the damaged ban file ${path}`);
        return [];
      }
    },
    async put(ban) {
      bans.set(ban.entity, ban);
      save();
    },
    async remove(entity) {
      if (!bans.delete(entity)) return false;
      save();
      return true;
    },
    close: async () => undefined,
  };
}

const KEY = 'mqprobe:bans';
const CHANNEL = 'mqprobe:bans:changed';

/**
 * Redis state: a hash of bans (`mqprobe:bans`, entity → JSON) and a channel announcing each
 * change, so a ban made by one process refuses at every process at once.
 */
export function redisStore(url: string, log: Logger): BanStore {
  const opts = redisOptions(url);
  const onError = (err: Error) => log.warn({ err: err.message }, `bans: Redis at ${redactUrl(url)} unavailable`);
  const cmd = new Redis(opts).on('error', onError);
  let sub: Redis | undefined;
  // `<origin> <entity>`: a process ignores its own announcements
  const origin = randomUUID();
  const announce = (entity: string) => cmd.publish(CHANNEL, `${origin} ${entity}`);
  return {
    shared: true,
    async load() {
      const all = await cmd.hgetall(KEY);
      return Object.values(all).flatMap((v) => {
        try {
          const b: unknown = JSON.parse(v);
          return isBan(b) ? [b] : [];
        } catch {
          return [];
        }
      });
    },
    async put(ban) {
      await cmd.hset(KEY, ban.entity, JSON.stringify(ban));
      await announce(ban.entity);
    },
    async remove(entity) {
      const n = await cmd.hdel(KEY, entity);
      if (n > 0) await announce(entity);
      return n > 0;
    },
    watch(changed) {
      sub = new Redis(opts).on('error', onError);
      sub.subscribe(CHANNEL).catch((err: Error) => onError(err));
      sub.on('message', (_channel: string, message: string) => {
        const space = message.indexOf(' ');
        if (space < 0 || message.slice(0, space) === origin) return;
        const entity = message.slice(space + 1);
        void cmd.hget(KEY, entity).then((v) => {
          let b: unknown;
          try {
            b = v === null ? undefined : JSON.parse(v);
          } catch {
            b = undefined;
          }
          changed(entity, isBan(b) ? b : undefined);
        }, onError);
      });
    },
    async close() {
      sub?.disconnect();
      await cmd.quit().catch(() => cmd.disconnect());
    },
  };
}
