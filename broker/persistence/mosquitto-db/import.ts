import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  MSG_STATE,
  hasMosquittoMagic,
  readMosquittoDb,
  type MosquittoDb,
  type MosquittoMessage,
  type MosquittoSession,
  type MosquittoSubscription,
} from './reader.js';
import { MosquittoDbError } from './cursor.js';
import {
  SNAPSHOT_FORMAT,
  SNAPSHOT_VERSION,
  type ImportMark,
  type Snapshot,
  type SnapshotSession,
} from '../../engine/persistence/snapshot.js';
import type { SnapshotPacket } from '../../engine/persistence/snapshot-records.js';
import { NEVER_EXPIRES, type SessionExpiry } from '../../engine/persistence/session-expiry.js';

/** mqprobe's own snapshot name when `persistence_file` is left at its default. */
export const DEFAULT_PERSISTENCE_FILE = 'mqprobe.db';
/** Beside a file that is (or is kept for) Mosquitto's, mqprobe's snapshot is `<persistence_file>` + this. */
export const SNAPSHOT_SUFFIX = '.mqprobe.json';
/** Larger files are refused rather than read whole into memory. */
export const MAX_IMPORT_BYTES = 1024 ** 3;

function firstBytes(path: string, n: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(n);
    return b.subarray(0, readSync(fd, b, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

/**
 * Which file is mqprobe's snapshot and which is Mosquitto's. The file `persistence_file` names is
 * mqprobe's snapshot only when it already holds one (it starts with `{`: an mqprobe JSON snapshot,
 * whole or not) or when it is the default `mqprobe.db` and does not exist yet. Otherwise it belongs
 * to Mosquitto: imported when it holds a Mosquitto db, never written, and the snapshot is
 * `<persistence_file>.mqprobe.json` beside it. A file mqprobe did not write is never moved or written.
 */
export function persistenceFiles(location: string, name: string): { snapshot: string; mosquittoDb?: string } {
  const named = join(location, name);
  if (!existsSync(named)) return name === DEFAULT_PERSISTENCE_FILE ? { snapshot: named } : { snapshot: named + SNAPSHOT_SUFFIX };
  let head: Buffer;
  try {
    head = firstBytes(named, 64);
  } catch {
    head = Buffer.alloc(0); // unreadable (permissions, a directory): not ours; the import attempt says why
  }
  const looksLikeJson = !hasMosquittoMagic(head) && head.toString('latin1').trimStart().startsWith('{');
  return looksLikeJson ? { snapshot: named } : { snapshot: named + SNAPSHOT_SUFFIX, mosquittoDb: named };
}

/** Outgoing messages in these states are re-sent as publishes; in the others the client already has the message. */
const RESENDABLE = new Set<number>([
  MSG_STATE.publishQos0,
  MSG_STATE.publishQos1,
  MSG_STATE.waitForPuback,
  MSG_STATE.publishQos2,
  MSG_STATE.waitForPubrec,
  MSG_STATE.queued,
]);

/**
 * A session's expiry as mqprobe counts it (its interval and when its connection ended), from what
 * Mosquitto wrote: the time the session expires, or 0 when its client was still connected as the file
 * was written (its connection ended then: `writtenAt`, the file's mtime in ms). A session that never
 * expires by its own interval (3.1.1) but has an expiry time was cut by Mosquitto's
 * `persistent_client_expiration`: it expires at that time, counted from when the file was written.
 */
function sessionExpiry(e: MosquittoSession['expiry'], writtenAt: number): SessionExpiry | undefined {
  if (!e || e.interval === 0) return undefined;
  if (e.interval < NEVER_EXPIRES)
    return { interval: e.interval, endedAt: e.time > 0 ? Math.max(0, (e.time - e.interval) * 1000) : writtenAt };
  if (e.time === 0) return undefined;
  const endedAt = Math.min(writtenAt, e.time * 1000);
  return { interval: Math.ceil((e.time * 1000 - endedAt) / 1000), endedAt };
}

function snapshotPacket(m: MosquittoMessage, now: number): SnapshotPacket {
  const out: SnapshotPacket = { topic: m.topic, payload: m.payload.toString('base64'), qos: m.qos, retain: m.retain };
  const { correlationData, ...rest } = m.properties;
  const properties: Record<string, unknown> = { ...rest };
  if (correlationData) properties.correlationData = correlationData.toString('base64');
  if (m.expiryTime !== undefined) {
    // the engine sends what remains of the interval, counted to the file's expiry time as Mosquitto counts it on restart
    out.messageExpiry = m.expiryTime * 1000;
    properties.messageExpiryInterval = Math.max(1, Math.ceil((out.messageExpiry - now) / 1000));
  }
  if (Object.keys(properties).length) out.properties = properties;
  return out;
}

function snapshotSubscription(s: MosquittoSubscription): SnapshotSession['subscriptions'][number] {
  return {
    topic: s.topic,
    qos: s.qos,
    nl: s.noLocal,
    rap: s.retainAsPublished,
    rh: 0,
    ...(s.identifier > 0 && { subscriptionIdentifier: s.identifier }),
  };
}

/** Puts the records into the shape mqprobe's snapshot restores from, counting what has no place there. */
export function mosquittoDbToSnapshot(db: MosquittoDb, savedAt: string, writtenAtMs: number, now = Date.now()) {
  const writtenAt = Math.floor(writtenAtMs); // a file's mtime has a fraction; a stored time is whole ms
  const left = { incomingQos2: 0, inPubrelPhase: 0 };
  const snapshot: Snapshot = {
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    savedAt,
    retained: db.retained.filter((m) => !m.topic.startsWith('$SYS/')).map((m) => snapshotPacket(m, now)),
    sessions: db.sessions.map((s) => {
      const expiry = sessionExpiry(s.expiry, writtenAt);
      return {
        clientId: s.clientId,
        subscriptions: s.subscriptions.map(snapshotSubscription),
        queue: s.messages.flatMap((m) => {
          if (m.direction === 'in') left.incomingQos2++;
          else if (!RESENDABLE.has(m.state)) left.inPubrelPhase++;
          else return [snapshotPacket(m, now)];
          return [];
        }),
        ...(expiry && { expiry }),
      };
    }),
  };
  return { snapshot, left };
}

/**
 * Imports a Mosquitto persistence file once. Returns the state to restore and the mark to keep in
 * mqprobe's snapshot, or undefined when there is nothing to import: the file was imported before,
 * changed since (not imported again: its queued messages would be delivered twice), or cannot be
 * read (an error naming the file and byte offset). The file is only ever read.
 */
export function importMosquittoDb(
  path: string,
  previous: ImportMark | undefined,
  snapshotFile: string,
  log: Logger,
): { snapshot: Snapshot; mark: ImportMark } | undefined {
  let data: Buffer;
  let mark: ImportMark;
  try {
    const st = statSync(path);
    if (st.size > MAX_IMPORT_BYTES)
      throw new MosquittoDbError(path, 0, `the file has ${st.size} bytes, more than the ${MAX_IMPORT_BYTES} mqprobe imports`);
    data = readFileSync(path);
    mark = {
      file: path,
      size: data.length,
      mtimeMs: st.mtimeMs,
      sha256: createHash('sha256').update(data).digest('hex'),
      importedAt: new Date().toISOString(),
    };
  } catch (err) {
    log.error({ file: path }, `cannot import Mosquitto persistence file: ${(err as Error).message}; left as it is`);
    return undefined;
  }
  if (previous?.sha256 === mark.sha256) {
    log.info({ file: path }, `Mosquitto persistence file ${path} was imported on ${previous.importedAt}; not imported again`);
    return undefined;
  }
  if (previous) {
    log.warn(
      { file: path, importedAt: previous.importedAt },
      `Mosquitto persistence file ${path} changed since it was imported on ${previous.importedAt}; not imported again (its queued messages would be delivered twice). ` +
        `To import it in place of mqprobe's state, stop mqprobe and remove ${snapshotFile}`,
    );
    return undefined;
  }
  let db: MosquittoDb;
  try {
    db = readMosquittoDb(data, path);
  } catch (err) {
    if (!(err instanceof MosquittoDbError)) throw err;
    log.error({ file: path, offset: err.offset }, `cannot import ${err.message}; the file is left as it is and mqprobe starts without it`);
    return undefined;
  }
  const { snapshot, left } = mosquittoDbToSnapshot(db, `mosquitto-db-${mark.sha256.slice(0, 16)}`, mark.mtimeMs);
  const queued = snapshot.sessions.reduce((n, s) => n + s.queue.length, 0);
  log.info(
    { file: path, dbVersion: db.version },
    `imported Mosquitto persistence file ${path} (db version ${db.version}): ${snapshot.retained.length} retained messages, ${snapshot.sessions.length} sessions, ${queued} queued messages; the file is not written`,
  );
  if (db.expired) log.info({ file: path }, `${db.expired} messages in ${path} had expired and were left out`);
  if (left.incomingQos2)
    log.warn(
      { file: path },
      `${left.incomingQos2} incoming QoS 2 messages awaiting PUBREL in ${path} were not imported (mqprobe keeps no such state across restarts)`,
    );
  if (left.inPubrelPhase)
    log.warn(
      { file: path },
      `${left.inPubrelPhase} outgoing QoS 2 messages in ${path} were already received by their clients (PUBREL phase) and were not queued again`,
    );
  return { snapshot, mark };
}
