import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import persistenceRedis from 'aedes-persistence-redis';
import type { BrokerConfig } from '../../config/types.js';
import type { BrokerState } from '../../persistence/state.js';
import { withDollarRuleOnRetained } from '../retained-dollar.js';
import { withConnackFirst } from '../connack-first.js';
import { withAckAfterRoute } from './ack-after-route.js';
import { withConnectDeadline } from './connect-deadline.js';
import { withSessionExpiryInRedis } from './redis-session-expiry.js';
import { withKeptSessions } from './redis-kept-sessions.js';
import { drainable } from './redis-connection.js';
import { createStreamEmitter, type StreamEmitterCounters } from './redis-stream-emitter.js';
import { createSharedGroups } from './redis-shared-groups.js';
import { withCleanIncoming } from './redis-clean-incoming.js';
import { withQueuedDeliveredOnce } from './redis-queued-once.js';

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

/** The counters that make a Redis outage visible (docs/scaling-redis.md). */
function redisCounters(metrics: Registry, log: Logger) {
  const c = (name: string, help: string) => new Counter({ name, help, registers: [metrics] });
  const published = c('mqprobe_redis_messages_published_total', 'Messages appended to the shared Redis message stream.');
  const failed = c(
    'mqprobe_redis_publish_failures_total',
    'Messages Redis refused: their publishes were not acknowledged and the client connection closed.',
  );
  const read = c('mqprobe_redis_messages_read_total', 'Messages this process read from the shared Redis message stream.');
  const duplicates = c(
    'mqprobe_redis_duplicates_dropped_total',
    'Stream entries dropped as repeats (an append resent after a reconnection).',
  );
  const malformed = c('mqprobe_redis_malformed_entries_total', 'Entries of the Redis message stream that mqprobe did not write (skipped).');
  const gaps = c('mqprobe_redis_stream_gaps_total', 'Times this process found messages trimmed from the stream before it read them.');
  const shareGarbage = c(
    'mqprobe_redis_share_malformed_total',
    'Shared subscription membership entries or message targets in Redis that mqprobe did not write (skipped).',
  );
  const refused = c(
    'mqprobe_redis_connects_refused_total',
    'CONNECTs refused (CONNACK 3) because the session could not be set up in Redis within connect_timeout.',
  );
  const waiting = new Gauge({
    name: 'mqprobe_redis_publishes_waiting',
    help: 'Publishes waiting for Redis to store them (their acknowledgements are held back).',
    registers: [metrics],
  });
  const stream: StreamEmitterCounters = {
    published: () => published.inc(),
    publishFailed: () => failed.inc(),
    waiting: (d) => waiting.inc(d),
    read: (n) => read.inc(n),
    duplicate: () => duplicates.inc(),
    malformed: () => malformed.inc(),
    gap: () => gaps.inc(),
  };
  const connectRefused = (clientId: string | null) => {
    refused.inc();
    log.warn(
      { client: clientId },
      `CONNECT of ${clientId ?? 'a client'} refused (server unavailable): its session could not be set up in Redis within connect_timeout`,
    );
  };
  return { stream, connectRefused, shareMalformed: () => shareGarbage.inc() };
}

/**
 * Broker state in Redis: sessions, retained messages and wills (aedes-persistence-redis), and the
 * message bus between processes (a Redis stream). Semantics under Redis faults: docs/scaling-redis.md.
 */
export function createRedisState(config: BrokerConfig, log: Logger, metrics: Registry): BrokerState {
  const url = config.persistenceRedisUrl!;
  const plog = log.child({ name: 'persistence.redis' });
  // ioredis retries forever and queues commands meanwhile (offline queue): operations wait for Redis
  // instead of failing. The connections are made here so their errors reach our log (rate-limited)
  // instead of ioredis' "Unhandled error event" on stderr.
  const conn = { ...redisOptions(url), maxRetriesPerRequest: null, enableOfflineQueue: true };
  const reportError = redisErrorReporter(plog, redactUrl(url));
  const connection = (role: string) =>
    new Redis(conn).on('error', (err: Error) => reportError(role, err)).on('ready', () => reportError.recovered(role));
  const state = drainable(connection('state'), plog, 'state');
  const counters = redisCounters(metrics, plog);
  // maxSessionDelivery -1: a resuming session gets its whole queue (LRANGE 0 -1), as with the in-memory persistence;
  // the default (1000) sent the first 1001 and left the rest in Redis until the client's next connect
  const shared = createSharedGroups({
    redis: state.redis,
    subscriber: connection('share-changes'),
    log: plog,
    malformed: counters.shareMalformed,
  });
  const redisPersistence = withKeptSessions(
    withCleanIncoming(shared.withSessionCopies(persistenceRedis({ conn: state.redis, maxSessionDelivery: -1 })), state.redis),
    state.redis,
  );
  const persistence = withConnectDeadline(
    withAckAfterRoute(
      withConnackFirst(withDollarRuleOnRetained(withSessionExpiryInRedis(withQueuedDeliveredOnce(redisPersistence), state.redis, plog))),
    ),
    config.connectTimeout * 1000,
    counters.connectRefused,
  );
  const mq = createStreamEmitter({
    pub: drainable(connection('messages-out'), plog, 'messages-out'),
    reader: connection('messages-in'),
    log: plog,
    counters: counters.stream,
    onError: reportError,
    onRecovered: reportError.recovered,
    shared,
  });
  plog.info(`broker state in redis ${redactUrl(url)}`);
  const p = persistence as {
    countOffline(): Promise<{ clientsCount: number }>;
    createRetainedStream(pattern: string): AsyncIterable<unknown>;
  };
  return {
    aedesOptions: { persistence, mq, sharedSubscriptionRouter: shared.router },
    counts: {
      retained: async () => {
        let n = 0;
        for await (const _ of p.createRetainedStream('#')) n++;
        return n;
      },
      retainedBytes: async () => {
        let n = 0;
        for await (const packet of p.createRetainedStream('#')) n += (packet as { payload: Buffer }).payload.length;
        return n;
      },
      sessions: async () => (await p.countOffline()).clientsCount,
    },
    start: async () => undefined,
    // Aedes closes the emitter but not the persistence; the clients it closed may still be writing
    // to Redis (wills): the connection goes once idle (redis-connection.ts)
    stop: () => {
      shared.close();
      return state.shut();
    },
  };
}
