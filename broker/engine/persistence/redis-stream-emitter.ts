import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import mqemitter from 'mqemitter';
import { makeReentrancySafe } from '../safe-emitter.js';
import type { DrainableRedis } from './redis-connection.js';

/** The stream all processes on one Redis append their messages to and read them from. */
export const MESSAGE_STREAM = 'mqprobe:messages';
/**
 * Entries kept (approximately: XADD MAXLEN ~). At 500 messages/s that is 200 s of traffic: a process
 * cut off from Redis for longer misses the oldest ones, and says so (counter and log line).
 */
export const STREAM_MAXLEN = 100_000;
const READ_COUNT = 100;
/**
 * Pause after a full batch while catching up on the backlog of an interruption: catch-up runs at up to
 * 5,000 messages/s. Replayed at full speed, a backlog reached subscribers faster than they acknowledged
 * and went over their max_queued_messages (dropped and counted, as Mosquitto does); at this pace they
 * keep up. Live traffic is never paced: full batches then only mean a busy stream.
 */
const CATCH_UP_PAUSE_MS = 20;
const READ_BLOCK_MS = 2_000;
const RETRY_MS = 200;
/** Ids of entries already handed to local subscribers, to drop an XADD that ioredis resent after a reconnect. */
const SEEN_IDS = 20_000;

type Done = (err?: Error | null) => void;
type Listener = (packet: unknown, done: Done) => void;
interface Local {
  on(topic: string, listener: Listener, done?: () => void): unknown;
  removeListener(topic: string, listener: Listener, done?: () => void): unknown;
  emit(packet: { topic: string }, done: Done): unknown;
}

export interface StreamEmitterCounters {
  published(): void;
  publishFailed(): void;
  waiting(delta: number): void;
  read(n: number): void;
  duplicate(): void;
  malformed(): void;
  gap(): void;
}

export interface StreamEmitterOptions {
  /** Appends (XADD); shut at close once idle. */
  pub: DrainableRedis;
  /** A connection of its own: it spends its time in blocking XREADs. */
  reader: Redis;
  log: Logger;
  counters: StreamEmitterCounters;
  onError(role: string, err: Error): void;
  onRecovered(role: string): void;
  /** Shared subscription targets carried with a message (redis-shared-groups.ts), field `s`. */
  shared?: {
    encode(packet: { topic: string }): Promise<string | undefined> | undefined;
    attach(packet: object, s: string): void;
  };
}

/**
 * Aedes' message bus (`mq`) over a Redis stream instead of Redis PUB/SUB (mqemitter-redis).
 *
 * PUB/SUB keeps nothing: a message published while a process is disconnected from Redis, or before
 * it re-subscribed after a reconnection, is gone for that process, and Redis accepted it, so the
 * publisher's PUBACK had been earned (issue 18: 879-1,564 of them lost per Redis restart). Here every
 * message is XADDed to one stream and `emit` completes once Redis has stored it (with appendonly on,
 * written to the AOF before Redis replies), and each process reads the stream from the last entry
 * it handled: after any interruption it resumes where it stopped. A process's own subscribers get
 * its messages through the stream too, so there is one order and one path.
 *
 * Costs: every process reads every message (not only those of topics it has subscribers for), and
 * one more Redis round trip per message before local delivery.
 */
export function createStreamEmitter(opts: StreamEmitterOptions) {
  const { pub, reader, log, counters } = opts;
  const local = makeReentrancySafe(mqemitter({ concurrency: 100 })) as unknown as Local;
  const tag = randomBytes(6).toString('base64url');
  let sequence = 0;
  const seen = new Set<string>();
  const seenOrder: string[] = [];
  let closing = false;
  let closed = false;
  let lastId = '';
  /** Settles once the last append was issued: the next one waits for that (not for its answer). */
  let appending: Promise<void> = Promise.resolve();

  // XADDs wait for the reader's starting point: a process must not skip its own first messages
  let markStarted!: () => void;
  const started = new Promise<void>((r) => (markStarted = r));

  const remember = (id: string): boolean => {
    if (seen.has(id)) return false;
    seen.add(id);
    seenOrder.push(id);
    if (seenOrder.length > SEEN_IDS) seen.delete(seenOrder.shift()!);
    return true;
  };

  const dispatch = (entries: [Buffer, Buffer[]][]) =>
    Promise.all(
      entries.map(([, fields]) => {
        const f = fieldMap(fields);
        if (!remember(f.i)) {
          counters.duplicate();
          return undefined;
        }
        const packet = decode(f);
        if (packet && f.s !== undefined) opts.shared?.attach(packet, f.s);
        if (!packet) {
          counters.malformed();
          log.error({ entry: f.i.slice(0, 64) }, `redis message stream: a malformed entry in ${MESSAGE_STREAM} was skipped`);
          return undefined;
        }
        return new Promise<void>((resolve) => local.emit(packet, () => resolve()));
      }),
    );

  const loop = (async () => {
    let interruptedAt = 0;
    let catchingUp = false;
    while (!closing) {
      try {
        if (!lastId) {
          const last = (await reader.xrevrange(MESSAGE_STREAM, '+', '-', 'COUNT', 1)) as [string, string[]][];
          lastId = last[0]?.[0] ?? '0-0';
          markStarted();
        }
        if (interruptedAt) await checkGap(reader, lastId, log, counters);
        const res = (await reader.xreadBuffer('COUNT', READ_COUNT, 'BLOCK', READ_BLOCK_MS, 'STREAMS', MESSAGE_STREAM, lastId)) as
          [Buffer, [Buffer, Buffer[]][]][] | null;
        if (interruptedAt) {
          log.warn(
            { lastId, after_ms: Date.now() - interruptedAt },
            'redis message stream: reading again, resuming after the last message handled',
          );
          opts.onRecovered('messages-in');
          interruptedAt = 0;
          catchingUp = true;
        }
        if (!res) {
          catchingUp = false;
          continue;
        }
        const entries = res[0][1];
        await dispatch(entries);
        lastId = entries[entries.length - 1][0].toString();
        counters.read(entries.length);
        if (entries.length < READ_COUNT) catchingUp = false;
        else if (catchingUp) await new Promise((r) => setTimeout(r, CATCH_UP_PAUSE_MS));
      } catch (err) {
        if (closing) break;
        interruptedAt ||= Date.now();
        opts.onError('messages-in', err as Error);
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  })();

  return {
    on: (topic: string, listener: Listener, done?: () => void) => local.on(topic, listener, done),
    removeListener: (topic: string, listener: Listener, done?: () => void) => local.removeListener(topic, listener, done),
    emit(packet: { topic: string; payload?: unknown }, done: Done = () => undefined) {
      if (closed) return done(new Error('broker message stream closed'));
      const { payload, ...head } = packet;
      const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload === undefined ? '' : String(payload));
      const id = `${tag}:${sequence++}`;
      const targets = opts.shared?.encode(packet);
      counters.waiting(1);
      // appended in the order emitted, also when choosing shared subscription targets takes a round trip:
      // each XADD is issued after the one before it was (not answered: they still pipeline)
      const before = appending;
      let issued!: () => void;
      appending = new Promise<void>((r) => (issued = r));
      const append = Promise.all([before, started, targets]).then(
        ([, , s]) => {
          const extra = s ? ['s', s] : [];
          const added = pub.redis.xadd(
            MESSAGE_STREAM,
            'MAXLEN',
            '~',
            STREAM_MAXLEN,
            '*',
            'i',
            id,
            'h',
            JSON.stringify(head),
            'p',
            body,
            ...extra,
          );
          issued();
          return added;
        },
        (err: Error) => {
          issued();
          throw err;
        },
      );
      append.then(
        () => {
          counters.waiting(-1);
          counters.published();
          done();
        },
        (err: Error) => {
          counters.waiting(-1);
          counters.publishFailed();
          opts.onError('messages-out', err);
          done(err);
        },
      );
    },
    close(cb: () => void = () => undefined) {
      if (closing) return void loop.then(() => cb());
      closing = true;
      // the pending XADDs (wills of the clients shutdown just closed) are written before the connection goes
      void pub
        .shut()
        .then(() => {
          closed = true;
          reader.disconnect();
          return loop;
        })
        .then(() => cb());
    },
  };
}

function fieldMap(fields: Buffer[]): { i: string; h: string; p: Buffer; s?: string } {
  const m: Record<string, Buffer> = {};
  for (let k = 0; k < fields.length; k += 2) m[fields[k].toString()] = fields[k + 1];
  return { i: m.i?.toString() ?? '', h: m.h?.toString() ?? '{}', p: m.p ?? Buffer.alloc(0), s: m.s?.toString() };
}

/** The packet an entry carries, or undefined when the entry was not written by mqprobe. */
function decode(f: { h: string; p: Buffer }): { topic: string; payload: Buffer } | undefined {
  try {
    const head = JSON.parse(f.h) as { topic?: unknown };
    if (typeof head !== 'object' || head === null || typeof head.topic !== 'string') return undefined;
    return { ...head, topic: head.topic, payload: f.p };
  } catch {
    return undefined;
  }
}

/** Stream ids as comparable pairs ("1700000000000-3"). */
function idAfter(a: string, b: string): boolean {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am > bm || (am === bm && as > bs);
}

/**
 * After an interruption: were entries this process had not read trimmed meanwhile (MAXLEN)? Redis 7
 * reports the newest deleted id; a process cut off longer than the stream's retention lost messages,
 * which must not go unnoticed.
 */
async function checkGap(reader: Redis, lastId: string, log: Logger, counters: StreamEmitterCounters): Promise<void> {
  const info = (await reader.call('XINFO', 'STREAM', MESSAGE_STREAM).catch(() => [])) as unknown[];
  const at = info.indexOf('max-deleted-entry-id');
  const maxDeleted = at >= 0 ? String(info[at + 1]) : '0-0';
  if (lastId !== '0-0' && idAfter(maxDeleted, lastId)) {
    counters.gap();
    log.error(
      { lastId, maxDeleted, maxlen: STREAM_MAXLEN },
      'redis message stream: messages for this process were trimmed before it could read them (cut off from Redis longer than the stream keeps)',
    );
  }
}
