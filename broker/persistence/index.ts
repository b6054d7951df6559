import type { Logger } from 'pino';
import type { Histogram, Registry } from 'prom-client';
import type { BrokerConfig } from '../config/types.js';
import type { BrokerState } from './state.js';
import { SnapshotPersistence, readSnapshot, writeSnapshot, type ImportMark, type Snapshot } from '../engine/persistence/snapshot.js';
import { createSafeEmitter } from '../engine/safe-emitter.js';
import { createRedisState } from '../engine/persistence/redis-state.js';
import { withDollarRuleOnRetained } from '../engine/retained-dollar.js';
import { withConnackFirst } from '../engine/connack-first.js';
import { importMosquittoDb, persistenceFiles } from './mosquitto-db/import.js';

export type { BrokerState } from './state.js';

/**
 * Chooses where broker state lives: Redis (several processes act as one broker), a snapshot
 * file (`persistence true`), or memory only.
 */
export function createBrokerState(config: BrokerConfig, log: Logger, saveSeconds: Histogram, metrics: Registry): BrokerState {
  if (config.persistenceRedisUrl) return createRedisState(config, log, metrics);
  // The snapshot-capable memory persistence is used even without `persistence true`: it also counts for $SYS.
  const persistence = withConnackFirst(withDollarRuleOnRetained(new SnapshotPersistence()));
  const counts = {
    retained: async () => persistence.retainedCount,
    retainedBytes: async () => persistence.retainedBytes,
    sessions: async () => [...persistence.sessionIds],
  };
  // this broker is alone on its emitter: the engine's per-client `$SYS/<id>/new/clients` and
  // `/disconnect/clients` would reach nobody (engine patch 50; Redis mode keeps them)
  const aedesOptions = { persistence, mq: createSafeEmitter(), announceClients: false };
  if (!config.persistence) return { aedesOptions, counts, start: async () => undefined, stop: async () => undefined };

  // persistence_file may name Mosquitto's own db: imported once, never written (docs/persistence.md)
  const { snapshot: file, mosquittoDb } = persistenceFiles(config.persistenceLocation, config.persistenceFile);
  const plog = log.child({ name: 'persistence' });
  let imported: ImportMark | undefined;
  let timer: NodeJS.Timeout | undefined;
  let saving: Promise<void> | undefined;
  const save = async () => {
    const end = saveSeconds.startTimer();
    try {
      const snap = { ...(await persistence.snapshot()), mosquittoDb: imported };
      const bytes = writeSnapshot(file, snap);
      plog.debug(`saved ${snap.retained.length} retained messages and ${snap.sessions.length} sessions to ${file} (${bytes} bytes)`);
    } catch (err) {
      plog.error({ err: (err as Error).message }, `cannot save ${file}`);
    } finally {
      end();
    }
  };
  /** Restores, warns about each record left out, and says what expired while the broker was down. */
  const restore = async (snap: Snapshot, from: string) => {
    const { skipped, expiredSessions, expiredMessages } = await persistence.restore(snap);
    for (const what of skipped) plog.warn({ file: from }, `persistence file ${from}: left out ${what}`);
    return expiredSessions || expiredMessages
      ? `; expired while the broker was down: ${expiredSessions} sessions, ${expiredMessages} messages`
      : '';
  };
  const saveOnce = () => (saving ??= save().finally(() => (saving = undefined)));
  return {
    aedesOptions,
    counts,
    async start() {
      const snap = readSnapshot(file, plog);
      if (snap) {
        const expired = await restore(snap, file);
        plog.info(
          `restored ${snap.retained.length} retained messages and ${snap.sessions.length} persistent sessions from ${file} (saved ${snap.savedAt})${expired}`,
        );
      }
      imported = snap?.mosquittoDb;
      const fromMosquitto = mosquittoDb && importMosquittoDb(mosquittoDb, imported, file, plog);
      if (fromMosquitto) {
        await restore(fromMosquitto.snapshot, mosquittoDb);
        imported = fromMosquitto.mark;
        await save(); // the imported state and its mark are on disk at once, not one autosave later
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
