import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import type { CaptureConfig } from '../config.js';
import type { DropEpisode, RunnerStats } from '../runner.js';
import { queueDir } from '../runners.js';
import { crashGaps, StateWriter } from './state.js';

export interface RunTracker {
  /** The ranges a crashed previous run left unaccounted for, one per sink it had (capture-dropped, reason crash). */
  gaps: DropEpisode[];
  /** Writes the final state: this run stopped cleanly. */
  stopped(): Promise<void>;
}

/**
 * Keeps `<capture_spool_dir>/capture-state.json` (capture/queue/state.ts) for this run, every
 * capture_queue_sync_interval (at least once a second), and reads what the previous run left.
 * Without capture_spool_dir there is nowhere to keep it: a crash then goes unnamed (docs say so).
 */
export function trackRun(cfg: CaptureConfig, run: string, names: string[], sinks: () => { name: string; stats(): RunnerStats }[], sequence: () => number, log: Logger): RunTracker | undefined {
  if (cfg.queue === 'disk' && !cfg.spoolDir) throw new Error('capture_queue disk needs capture_spool_dir (the queue lives there)');
  const dir = cfg.spoolDir;
  if (!dir || names.length === 0) return undefined;
  mkdirSync(dir, { recursive: true });
  const gaps = crashGaps(dir, (sink) => (cfg.queue === 'disk' ? queueDir(dir, sink) : undefined), log);
  const writer = new StateWriter(dir);
  const acked = () => Object.fromEntries([...names.map((n) => [n, 0]), ...sinks().map((s) => [s.name, s.stats().acked])]) as Record<string, number>;
  const state = (clean: boolean) => ({ run, sequence: sequence(), acked: acked(), clean });
  writer.writeNow(state(false));
  const timer = setInterval(() => writer.write(state(false)), Math.min(cfg.queueSyncMs || 1000, 1000));
  timer.unref();
  return {
    gaps,
    async stopped() {
      clearInterval(timer);
      await writer.settled();
      writer.writeNow(state(true));
    },
  };
}
