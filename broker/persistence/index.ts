import { join } from 'node:path';
import type { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Histogram } from 'prom-client';
import persistenceRedis from 'aedes-persistence-redis';
import mqemitterRedis from 'mqemitter-redis';
import type { BrokerConfig } from '../config/types.js';
import { SnapshotPersistence, readSnapshot, writeSnapshot } from './snapshot.js';
import { makeReentrancySafe, createSafeEmitter } from '../engine/safe-emitter.js';
import { withDollarRuleOnRetained } from '../engine/retained-dollar.js';
import { withConnackFirst } from '../engine/connack-first.js';

export interface BrokerState {
  /** Counts for $SYS: retained messages and stored sessions. */
  counts: { retained(): Promise<number>; sessions(): Promise<string[] | number> };
  /** Options for Aedes.createBroker (persistence and mq); empty for the plain in-memory default. */
  aedesOptions: { persistence?: unknown; mq?: unknown };
  /** Called once Aedes is up: restores the snapshot and starts autosaving. */
  start(): Promise<void>;
  /** Final save (snapshot mode); called after clients are gone. */
  stop(): Promise<void>;
}

/** Redis URL with any password replaced, for logs and errors. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}

/** ioredis options from a redis:// or rediss:// URL (aedes-persistence-redis takes no URL). */
export function redisOptions(url: string): Record<string, unknown> {
  const u = new URL(url);
  const db = u.pathname.replace(/^\//, '');
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 6379,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: db ? Number(db) : 0,
    tls: u.protocol === 'rediss:' ? {} : undefined,
  };
}

/**
 * Logs a Redis outage once per connection role and then at most every 30 s while it lasts, and
 * its end: a down Redis retried every few hundred ms must not flood the log.
 */
function redisErrorReporter(log: Logger, where: string) {
  const lastLogged = new Map<string, number>();
  const report = (role: string, err: Error) => {
    const last = lastLogged.get(role);
    if (last !== undefined && Date.now() - last < 30_000) return;
    lastLogged.set(role, Date.now());
    log.error({ err: err.message, role }, `redis ${where} unavailable (${role}); retrying`);
  };
  report.recovered = (role: string) => {
    if (lastLogged.delete(role)) log.warn({ role }, `redis ${where} reachable again (${role})`);
  };
  return report;
}

/**
 * Chooses where broker state lives: Redis (several processes act as one broker), a snapshot
 * file (`persistence true`), or memory only.
 */
export function createBrokerState(config: BrokerConfig, log: Logger, saveSeconds: Histogram): BrokerState {
  if (config.persistenceRedisUrl) {
    const url = config.persistenceRedisUrl;
    const plog = log.child({ name: 'persistence.redis' });
    // ioredis retries forever by default; clients see refused or stalled operations meanwhile (docs/deploy.md).
    // The connections are made here so their errors reach our log (rate-limited) instead of ioredis'
    // "Unhandled error event" on stderr, or an uncaught exception from mqemitter-redis.
    const conn = { ...redisOptions(url), maxRetriesPerRequest: null, enableOfflineQueue: true };
    const reportError = redisErrorReporter(plog, redactUrl(url));
    const connection = (role: string) => new Redis(conn).on('error', (err: Error) => reportError(role, err)).on('ready', () => reportError.recovered(role));
    const stateConn = connection('state');
    // maxSessionDelivery -1: a resuming session gets its whole queue (LRANGE 0 -1), as with the in-memory persistence;
    // the default (1000) sent the first 1001 and left the rest in Redis until the client's next connect
    const persistence = withConnackFirst(withDollarRuleOnRetained(persistenceRedis({ conn: stateConn, maxSessionDelivery: -1 })));
    const emitter = mqemitterRedis({ subConn: connection('messages-in'), pubConn: connection('messages-out') });
    // mqemitter-redis re-emits its connections' errors here (an uncaught exception without a listener)
    (emitter as unknown as { state: EventEmitter }).state.on('error', (err: Error) => reportError('messages-out', err));
    const mq = makeReentrancySafe(emitter as object);
    plog.info(`broker state in redis ${redactUrl(url)}`);
    const p = persistence as { countOffline(): Promise<{ clientsCount: number }>; createRetainedStream(pattern: string): AsyncIterable<unknown> };
    return {
      aedesOptions: { persistence, mq },
      counts: {
        retained: async () => {
          let n = 0;
          for await (const _ of p.createRetainedStream('#')) n++;
          return n;
        },
        sessions: async () => (await p.countOffline()).clientsCount,
      },
      start: async () => undefined,
      // Aedes closes the emitter but not the persistence: its connection would otherwise reconnect forever
      stop: async () => {
        await stateConn.quit().catch(() => stateConn.disconnect());
      },
    };
  }
  // The snapshot-capable memory persistence is used even without `persistence true`: it also counts for $SYS.
  const persistence = withConnackFirst(withDollarRuleOnRetained(new SnapshotPersistence()));
  const counts = { retained: async () => persistence.retainedCount, sessions: async () => [...persistence.sessionIds] };
  const mq = createSafeEmitter();
  if (!config.persistence) return { aedesOptions: { persistence, mq }, counts, start: async () => undefined, stop: async () => undefined };

  const file = join(config.persistenceLocation, config.persistenceFile);
  const plog = log.child({ name: 'persistence' });
  let timer: NodeJS.Timeout | undefined;
  let saving: Promise<void> | undefined;
  const save = async () => {
    const end = saveSeconds.startTimer();
    try {
      const snap = await persistence.snapshot();
      const bytes = writeSnapshot(file, snap);
      plog.debug(`saved ${snap.retained.length} retained messages and ${snap.sessions.length} sessions to ${file} (${bytes} bytes)`);
    } catch (err) {
      plog.error({ err: (err as Error).message }, `cannot save ${file}`);
    } finally {
      end();
    }
  };
  const saveOnce = () => (saving ??= save().finally(() => (saving = undefined)));
  return {
    aedesOptions: { persistence, mq },
    counts,
    async start() {
      const snap = readSnapshot(file, plog);
      if (snap) {
        await persistence.restore(snap);
        plog.info(`restored ${snap.retained.length} retained messages and ${snap.sessions.length} persistent sessions from ${file} (saved ${snap.savedAt})`);
      }
      if (config.autosaveInterval > 0) timer = setInterval(() => void saveOnce(), config.autosaveInterval * 1000).unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      await saving;
      await save();
    },
  };
}
