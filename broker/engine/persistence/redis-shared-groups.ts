import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { levelsMatch } from '../../auth/topic-filter.js';

/** The process ids that registered members (each with a hash of its own, below). */
export const SHARE_PROCESSES = 'mqprobe:share:processes';
/** One process's members: field JSON `[group filter, client id]`, value JSON `{qos, persistent}`; expires unless renewed. */
export const shareProcessKey = (processId: string) => `mqprobe:share:process:${processId}`;
/** The round-robin counter of one group (its whole `$share/<group>/<filter>`). */
export const shareCounterKey = (group: string) => `mqprobe:share:next:${group}`;
/** Said on every change of membership: the other processes read it again. */
export const SHARE_CHANGED = 'mqprobe:share:changed';

/**
 * How long a process's registrations outlive its last renewal: the members of a process that died
 * stop being chosen after at most this plus one renewal period.
 */
export const MEMBER_TTL_MS = 6_000;
const RENEW_MS = MEMBER_TTL_MS / 3;

interface Member {
  clientId: string;
  qos: number;
  persistent: boolean;
}
interface Group {
  filter: string[];
  /** Whether the filter starts with a wildcard: such a filter matches no `$` topic. */
  wildcardFirst: boolean;
  /** Sorted by client id, one entry per client: every process indexes the same list. */
  members: Member[];
}
interface Packet {
  topic: string;
  qos?: number;
}
/** The client chosen in each group a message matched, by group (`$share/…`). */
type Targets = Record<string, string>;
/** The member chosen in each group, as the publishing process knew it when it chose. */
type Choice = Map<string, Member>;
type Done = (err?: Error) => void;
interface Sub {
  clientId: string;
  topic: string;
  qos: number;
}
interface EnqueuingPersistence {
  outgoingEnqueueCombi(subs: Sub[], packet: Packet): Promise<void>;
}

/** The choice for a message published while no group has members. */
const NONE: Promise<undefined> = Promise.resolve(undefined);

/** Where a packet read from the message stream keeps its targets (not a packet field Aedes copies). */
const TARGETS = Symbol('mqprobe.shareTargets');

export interface SharedGroupsOptions {
  /** Commands (not subscribe mode). */
  redis: Redis;
  /** A connection of its own, in subscribe mode for SHARE_CHANGED. */
  subscriber: Redis;
  log: Logger;
  /** Counts garbage found in the membership keys. */
  malformed(): void;
}

/**
 * Shared subscription groups spanning every process on one Redis (docs/mqtt5.md "Across processes").
 *
 * Each process registers its connected members in a hash of its own that expires unless renewed,
 * and says so on SHARE_CHANGED; every process keeps the whole membership in memory. The process a
 * message is published on chooses its member in each matching group (an INCR per group, modulo the
 * sorted members: round robin across processes), stores it for a chosen persistent QoS 1/2 member
 * in that session's queue (with the copies Aedes stores for offline sessions), and the choice
 * travels with the message on the stream: only the process holding the chosen client delivers it.
 */
export function createSharedGroups(opts: SharedGroupsOptions) {
  const { redis, subscriber, log } = opts;
  const processId = randomBytes(8).toString('hex');
  const key = shareProcessKey(processId);
  /** This process's members: registration field → member and how many of its connections joined. */
  const local = new Map<string, { member: Member; count: number }>();
  let groups = new Map<string, Group>();
  const chosen = new WeakMap<object, Promise<Choice | undefined>>();
  const warned = new Set<string>();
  let reloading: Promise<void> | undefined;
  let again = false;
  let closed = false;

  const garbage = (what: string, detail: string) => {
    opts.malformed();
    if (warned.size > 1000 || warned.has(detail)) return;
    warned.add(detail);
    log.warn({ detail: detail.slice(0, 200) }, `shared subscriptions: ${what} in Redis skipped`);
  };

  const read = async (): Promise<void> => {
    const ids = await redis.smembers(SHARE_PROCESSES);
    const pipe = redis.pipeline();
    for (const id of ids) pipe.hgetall(shareProcessKey(id));
    const hashes = (await pipe.exec()) ?? [];
    const next = new Map<string, Map<string, Member>>();
    for (const [i, id] of ids.entries()) {
      const [err, hash] = hashes[i] ?? [];
      if (err) {
        garbage('a membership key that is not a hash', `${shareProcessKey(id)}: ${(err as Error).message}`);
        continue;
      }
      const fields = Object.entries((hash ?? {}) as Record<string, string>);
      // gone (expired: its process died, or left no members): dropped unless it came back meanwhile
      if (fields.length === 0) void forget(id);
      for (const [field, value] of fields) {
        const entry = parseEntry(field, value);
        if (!entry) {
          garbage('a malformed membership entry', `${field} = ${value}`);
          continue;
        }
        const members = next.get(entry.group) ?? new Map<string, Member>();
        next.set(entry.group, members.set(entry.member.clientId, entry.member));
      }
    }
    groups = new Map(
      [...next].map(([group, members]) => {
        const filter = group.slice(group.indexOf('/', '$share/'.length) + 1);
        const sorted = [...members.values()].sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0));
        return [group, { filter: filter.split('/'), wildcardFirst: filter[0] === '+' || filter[0] === '#', members: sorted }];
      }),
    );
  };

  const forget = (id: string) =>
    redis
      .eval(
        "if redis.call('EXISTS', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end return 0",
        2,
        shareProcessKey(id),
        SHARE_PROCESSES,
        id,
      )
      .catch(() => undefined);

  const announce = () => redis.publish(SHARE_CHANGED, processId);

  /** Reads the membership again; calls during a read make one more read after it. */
  const reload = (): Promise<void> => {
    if (reloading) {
      again = true;
      return reloading;
    }
    reloading = (async () => {
      do {
        again = false;
        await read().catch((err: Error) =>
          log.warn({ err: err.message }, 'shared subscriptions: membership not read from Redis; the last one stays'),
        );
      } while (again && !closed);
      reloading = undefined;
    })();
    return reloading;
  };

  /**
   * Writes this process's members again, replacing what its hash held: after a Redis restart they are
   * back within one period, and an entry whose removal failed (Redis away at the leave) goes.
   */
  const renew = async () => {
    const tx = redis.multi().del(key);
    if (local.size > 0) {
      const fields = [...local].flatMap(([field, { member }]) => [field, memberValue(member)]);
      tx.sadd(SHARE_PROCESSES, processId)
        .hset(key, ...fields)
        .pexpire(key, MEMBER_TTL_MS);
    }
    const [[, deleted] = []] = (await tx.exec()) ?? [];
    // the hash had gone (Redis lost it, or this process was stalled past its expiry): tell the others now
    if (deleted === 0 && local.size > 0) await announce();
  };

  // one renewal at a time: while Redis is away they would pile up in ioredis' offline queue
  let renewing = false;
  const timer = setInterval(() => {
    if (renewing) return;
    renewing = true;
    void renew()
      .catch((err: Error) => log.warn({ err: err.message }, 'shared subscriptions: membership not renewed in Redis'))
      .then(reload)
      .finally(() => (renewing = false));
  }, RENEW_MS);
  timer.unref();

  subscriber.on('message', (channel: string) => {
    if (channel === SHARE_CHANGED) void reload();
  });
  void subscriber
    .subscribe(SHARE_CHANGED)
    .then(reload, (err: Error) => log.warn({ err: err.message }, 'shared subscriptions: not subscribed to changes'));

  /**
   * The member chosen in each group `packet` matches, decided once per packet: the persistence (for
   * a QoS 1/2 message) and then the stream ask, and a membership read in between must not change the
   * answer (a member chosen without its stored copy).
   */
  const choose = (packet: Packet): Promise<Choice | undefined> | undefined => {
    let p = chosen.get(packet);
    if (!p) {
      p = groups.size === 0 ? NONE : pick(packet);
      chosen.set(packet, p);
    }
    return p === NONE ? undefined : p;
  };

  const pick = async (packet: Packet): Promise<Choice | undefined> => {
    const levels = packet.topic.split('/');
    const dollar = packet.topic.startsWith('$');
    const matched = [...groups].filter(([, g]) => g.members.length > 0 && !(dollar && g.wildcardFirst) && levelsMatch(g.filter, levels));
    if (matched.length === 0) return undefined;
    const pipe = redis.pipeline();
    for (const [group] of matched) pipe.incr(shareCounterKey(group));
    const counts = (await pipe.exec()) ?? [];
    const choice: Choice = new Map();
    matched.forEach(([group, g], i) => {
      const [err, n] = counts[i] ?? [];
      if (err) throw err;
      choice.set(group, g.members[(Number(n) - 1) % g.members.length]!);
    });
    return choice;
  };

  return {
    processId,
    /** The engine's router (option sharedSubscriptionRouter). */
    router: {
      joined(topic: string, m: Member, done: Done) {
        const field = JSON.stringify([topic, m.clientId]);
        const had = local.get(field);
        local.set(field, { member: m, count: (had?.count ?? 0) + 1 });
        redis
          .multi()
          .sadd(SHARE_PROCESSES, processId)
          .hset(key, field, memberValue(m))
          .pexpire(key, MEMBER_TTL_MS)
          .publish(SHARE_CHANGED, processId)
          .exec()
          .then(() => reload())
          .then(
            () => done(),
            (err: Error) => done(err),
          );
      },
      left(topic: string, clientId: string) {
        const field = JSON.stringify([topic, clientId]);
        const had = local.get(field);
        if (!had) return;
        if (had.count > 1) return void (had.count -= 1);
        local.delete(field);
        void redis
          .hdel(key, field)
          .then(announce)
          .then(reload)
          .catch((err: Error) =>
            log.warn({ err: err.message }, 'shared subscriptions: a leaving member not removed from Redis (it expires)'),
          );
      },
      target(packet: object, topic: string): string | undefined {
        return (packet as { [TARGETS]?: Targets })[TARGETS]?.[topic];
      },
    },
    /** For the message stream: the targets to append with `packet`, if any (field `s`). */
    encode(packet: Packet): Promise<string | undefined> | undefined {
      return choose(packet)?.then((c) => (c ? JSON.stringify(Object.fromEntries([...c].map(([g, m]) => [g, m.clientId]))) : undefined));
    },
    /** For the message stream: keeps the targets read with a packet on it (garbage: warned and dropped). */
    attach(packet: object, s: string): void {
      const targets = parseTargets(s);
      if (!targets) return garbage('a malformed share target on a stream entry', s);
      (packet as { [TARGETS]?: Targets })[TARGETS] = targets;
    },
    /** Adds the chosen persistent members to the sessions Aedes stores a QoS 1/2 message for. */
    withSessionCopies<T>(persistence: T): T {
      const p = persistence as T & EnqueuingPersistence;
      const enqueue = p.outgoingEnqueueCombi.bind(p);
      p.outgoingEnqueueCombi = async (subs: Sub[], packet: Packet) => {
        const extra: Sub[] = [];
        for (const [group, m] of (await choose(packet)) ?? []) {
          if (m.persistent && m.qos > 0) extra.push({ clientId: m.clientId, topic: group, qos: m.qos });
        }
        return enqueue(extra.length ? [...subs, ...extra] : subs, packet);
      };
      return p;
    },
    /**
     * Stops renewing and removes this process's members (the clients were closed before, so they
     * normally left already). Waits for nothing: Redis may be gone, and shutdown must not hang on it
     * (the connection drains, capped, in redis-connection.ts).
     */
    close(): void {
      closed = true;
      clearInterval(timer);
      if (local.size > 0) {
        local.clear();
        void redis
          .multi()
          .del(key)
          .srem(SHARE_PROCESSES, processId)
          .publish(SHARE_CHANGED, processId)
          .exec()
          .catch(() => undefined);
      }
      subscriber.disconnect();
    },
  };
}

export type SharedGroups = ReturnType<typeof createSharedGroups>;

function memberValue(m: Member): string {
  return JSON.stringify({ qos: m.qos, persistent: m.persistent });
}

/** A registration as written by memberValue and `joined`, or undefined for anything else. */
function parseEntry(field: string, value: string): { group: string; member: Member } | undefined {
  try {
    const f = JSON.parse(field) as unknown;
    const v = JSON.parse(value) as { qos?: unknown; persistent?: unknown };
    if (!Array.isArray(f) || f.length !== 2) return undefined;
    const [group, clientId] = f as unknown[];
    if (typeof group !== 'string' || typeof clientId !== 'string' || !validGroup(group)) return undefined;
    if (typeof v !== 'object' || v === null || ![0, 1, 2].includes(v.qos as number) || typeof v.persistent !== 'boolean') return undefined;
    return { group, member: { clientId, qos: v.qos as number, persistent: v.persistent } };
  } catch {
    return undefined;
  }
}

function validGroup(group: string): boolean {
  if (!group.startsWith('$share/')) return false;
  const slash = group.indexOf('/', '$share/'.length);
  const name = group.slice('$share/'.length, slash);
  return slash > '$share/'.length && !/[+#]/.test(name) && group.length > slash + 1;
}

function parseTargets(s: string): Targets | undefined {
  try {
    const t = JSON.parse(s) as unknown;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) return undefined;
    const out = Object.create(null) as Targets;
    for (const [group, clientId] of Object.entries(t)) {
      if (typeof clientId !== 'string') return undefined;
      out[group] = clientId;
    }
    return out;
  } catch {
    return undefined;
  }
}
