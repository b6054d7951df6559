import { mkdirSync, openSync, writeSync, fsyncSync, closeSync, renameSync, readFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import type { Logger } from 'pino';
import MemoryPersistence, { type StoredPacket, type StoredSubscription } from 'aedes-persistence/asyncPersistence.js';
import { checkSubscription, fromSnap, toSnap, type SnapshotPacket } from './snapshot-records.js';
import { expiresAt, parseSessionExpiry, sessionExpiryOf, type ExpiringEngine, type SessionExpiry } from './session-expiry.js';

/** What mqprobe's snapshot records about the Mosquitto file it imported, so that it is imported once. */
export interface ImportMark {
  file: string;
  size: number;
  mtimeMs: number;
  sha256: string;
  importedAt: string;
}

export const SNAPSHOT_FORMAT = 'mqprobe-snapshot';
export const SNAPSHOT_VERSION = 1;

export interface SnapshotSession {
  clientId: string;
  subscriptions: StoredSubscription[];
  queue: SnapshotPacket[];
  /** MQTT 5 sessions that expire: when and after how long (session-expiry.ts). */
  expiry?: SessionExpiry;
}
export interface Snapshot {
  format: typeof SNAPSHOT_FORMAT;
  version: typeof SNAPSHOT_VERSION;
  savedAt: string;
  retained: SnapshotPacket[];
  sessions: SnapshotSession[];
  /** The Mosquitto persistence file imported into this state, so that it is imported once. */
  mosquittoDb?: ImportMark;
}

/** What a restore left out: records with garbage (each named) and what expired while the broker was down. */
export interface RestoreReport {
  skipped: string[];
  expiredSessions: number;
  expiredMessages: number;
}

/** A session's record as read back, or why it cannot be one. */
function checkSession(s: SnapshotSession): string | undefined {
  if (typeof s !== 'object' || s === null || typeof s.clientId !== 'string') return 'not a session with a client id';
  if (!Array.isArray(s.subscriptions) || !Array.isArray(s.queue)) return 'subscriptions or queue is not a list';
  for (const sub of s.subscriptions) {
    const bad = checkSubscription(sub);
    if (bad) return `subscription: ${bad}`;
  }
  if (s.expiry === undefined) return undefined;
  const expiry = parseSessionExpiry(s.expiry);
  return typeof expiry === 'string' ? `expiry: ${expiry}` : undefined;
}

const expired = (p: StoredPacket, now: number) => p.messageExpiry !== undefined && p.messageExpiry <= now;

/**
 * Aedes' in-memory persistence plus a snapshot file, as Mosquitto's `persistence true`:
 * retained messages, persistent sessions' subscriptions and their queued QoS 1/2 messages.
 * The memory class keeps its state in private fields, so the few mutations a snapshot needs
 * to enumerate (which sessions exist) are mirrored here.
 */
export class SnapshotPersistence extends MemoryPersistence {
  private readonly sessions = new Set<string>();
  /** Persistent sessions, with subscriptions or without (engine patch 60 asks for them to answer session present). */
  private readonly kept = new Set<string>();
  /** Client ids whose outgoing queue may hold messages: enqueued for since `outgoingClear` last emptied it. */
  private readonly queued = new Set<string>();
  /** Retained topics and their payload sizes. */
  private readonly retainedTopics = new Map<string, number>();
  private retainedPayloadBytes = 0;
  private engine?: ExpiringEngine;

  override async setup(broker: unknown): Promise<void> {
    this.engine = broker as ExpiringEngine;
    await super.setup(broker);
  }

  override async storeRetained(packet: StoredPacket): Promise<void> {
    await super.storeRetained(packet);
    this.retainedPayloadBytes -= this.retainedTopics.get(packet.topic) ?? 0;
    if (packet.payload.length === 0) this.retainedTopics.delete(packet.topic);
    else this.retainedTopics.set(packet.topic, packet.payload.length);
    this.retainedPayloadBytes += packet.payload.length;
  }

  override async addSubscriptions(client: { id: string }, subs: StoredSubscription[]): Promise<void> {
    await super.addSubscriptions(client, subs);
    this.sessions.add(client.id);
  }

  override async outgoingEnqueueCombi(subs: { clientId: string }[], packet: StoredPacket): Promise<void> {
    await super.outgoingEnqueueCombi(subs, packet);
    for (const s of subs) {
      this.sessions.add(s.clientId);
      this.queued.add(s.clientId);
    }
  }

  override async outgoingEnqueue(sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    await super.outgoingEnqueue(sub, packet);
    this.sessions.add(sub.clientId);
    this.queued.add(sub.clientId);
  }

  /**
   * Drops the messages queued for a client when it is called, as the engine's connect handler did
   * one by one on Clean Start (engine patch 51 calls this instead): at once when nothing was
   * queued for the id since its queue was last dropped, the case of every clean client.
   */
  async outgoingClear(client: { id: string }): Promise<void> {
    if (!this.queued.delete(client.id)) return;
    const stale = this.outgoingStream(client); // a copy of the queue as it is now
    for await (const p of stale) await this.outgoingClearMessageId(client, p as StoredPacket);
  }

  override async cleanSubscriptions(client: { id: string }): Promise<void> {
    await super.cleanSubscriptions(client);
    this.sessions.delete(client.id);
    this.kept.delete(client.id);
  }

  /** Records a persistent session (a connect with clean session 0); resolves whether it existed. */
  async keepSession(client: { id: string }): Promise<boolean> {
    const existed = this.kept.has(client.id);
    this.kept.add(client.id);
    this.sessions.add(client.id);
    return existed;
  }

  get retainedCount(): number {
    return this.retainedTopics.size;
  }

  /** The payload bytes of the retained messages. */
  get retainedBytes(): number {
    return this.retainedPayloadBytes;
  }

  /** Client ids with a stored session (subscriptions or queued messages). */
  get sessionIds(): ReadonlySet<string> {
    return this.sessions;
  }

  async snapshot(): Promise<Snapshot> {
    const now = Date.now();
    const retained: SnapshotPacket[] = [];
    for (const topic of this.retainedTopics.keys()) {
      if (topic.startsWith('$SYS/')) continue; // regenerated by the broker
      for await (const p of this.createRetainedStream(topic)) retained.push(toSnap(p as StoredPacket));
    }
    const sessions: Snapshot['sessions'] = [];
    for (const clientId of this.sessions) {
      const subscriptions = await this.subscriptionsByClient({ id: clientId });
      const queue: SnapshotPacket[] = [];
      for await (const p of this.outgoingStream({ id: clientId })) queue.push(toSnap(p as StoredPacket));
      if (!subscriptions.length && !queue.length && !this.kept.has(clientId)) continue;
      const expiry = this.engine && sessionExpiryOf(this.engine, clientId, now);
      sessions.push({ clientId, subscriptions, queue, ...(expiry && { expiry }) });
    }
    return { format: SNAPSHOT_FORMAT, version: SNAPSHOT_VERSION, savedAt: new Date(now).toISOString(), retained, sessions };
  }

  /**
   * Puts a snapshot's state back. A record with garbage in it is left out and named in the report (the
   * rest is restored); so are the sessions and messages whose expiry passed while the broker was down.
   * The expiry of the other sessions counts on from when their connection ended.
   */
  async restore(s: Snapshot): Promise<RestoreReport> {
    const report: RestoreReport = { skipped: [], expiredSessions: 0, expiredMessages: 0 };
    const now = Date.now();
    const readPacket = (p: SnapshotPacket, where: string) => {
      const packet = fromSnap(p);
      if (typeof packet === 'string') report.skipped.push(`${where}: ${packet}`);
      else if (expired(packet, now)) report.expiredMessages++;
      else return packet;
      return undefined;
    };
    for (const [i, p] of s.retained.entries()) {
      const packet = readPacket(p, `retained message ${i}`);
      if (packet) await this.storeRetained(packet);
    }
    // Aedes finds a queued packet again (to record its message id, then to clear it on PUBACK) by
    // brokerId + brokerCounter, and drops a packet whose counter it has already seen from that broker
    // id; restored packets get an origin of their own with counters counting up from 1.
    const brokerId = `snapshot-${s.savedAt}`;
    let brokerCounter = 0;
    for (const [i, session] of s.sessions.entries()) {
      const bad = checkSession(session);
      if (bad) {
        report.skipped.push(`session ${i}${typeof session?.clientId === 'string' ? ` (${session.clientId.slice(0, 64)})` : ''}: ${bad}`);
        continue;
      }
      if (session.expiry && expiresAt(session.expiry) <= now) {
        report.expiredSessions++;
        continue;
      }
      await this.keepSession({ id: session.clientId });
      if (session.subscriptions.length) await this.addSubscriptions({ id: session.clientId }, session.subscriptions);
      for (const p of session.queue) {
        const packet = readPacket(p, `message queued for ${session.clientId}`);
        if (packet) await this.outgoingEnqueue({ clientId: session.clientId }, { ...packet, brokerId, brokerCounter: ++brokerCounter });
      }
      if (session.expiry) this.engine?.restoreSessionExpiry(session.clientId, session.expiry.interval, session.expiry.endedAt);
    }
    return report;
  }
}

function isSnapshot(v: unknown): v is Snapshot {
  const s = v as Snapshot;
  return !!s && s.format === SNAPSHOT_FORMAT && s.version === SNAPSHOT_VERSION && Array.isArray(s.retained) && Array.isArray(s.sessions);
}

/** Writes the snapshot atomically: temp file, fsync, rename. */
export function writeSnapshot(path: string, s: Snapshot): number {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const data = Buffer.from(JSON.stringify(s));
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return data.length;
}

/**
 * Reads a snapshot. A missing file is a first start; a corrupt or truncated one is reported,
 * moved aside (never overwritten: it may be needed for forensics) and the broker starts empty.
 */
export function readSnapshot(path: string, log: Logger): Snapshot | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (!isSnapshot(parsed)) throw new Error(`not an ${SNAPSHOT_FORMAT} v${SNAPSHOT_VERSION} file`);
    return parsed;
  } catch (err) {
    const aside = join(dirname(path), `${path.split('/').pop()}.corrupt-${Date.now()}`);
    renameSync(path, aside);
    log.error(
      { file: path, keptAs: aside },
      `persistence file ${path} is unreadable (${(err as Error).message}); starting empty, the bad file is kept as ${aside}`,
    );
    return undefined;
  }
}
