import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import type { CaptureConfig } from '../config.js';
import type { DropEpisode, RunnerStats } from '../runner.js';
import { queueDir } from '../runners.js';
import { crashGaps, StateWriter } from './state.js';

export interface RunTracker {
  /** Writes the state when the sync interval has passed (called at every flush of the pipeline: a busy broker's timers come late). */
  tick(): void;
  /** The ranges a crashed previous run left unaccounted for, one per sink it had (capture-dropped, reason crash). */
  gaps: DropEpisode[];
  /** Writes the final state: this run stopped cleanly. */
  stopped(): void;
}

/**
 * Keeps `<capture_spool_dir>/capture-state.json` (capture/queue/state.ts) for this run, every
 * capture_queue_sync_interval (at least once a second), and reads what the previous run left.
 * Without capture_spool_dir there is nowhere to keep it: a crash then goes unnamed (docs say so).
 */
export function trackRun(
  cfg: CaptureConfig,
  run: string,
  names: string[],
  sinks: () => { name: string; stats(): RunnerStats }[],
  sequence: () => number,
  log: Logger,
): RunTracker | undefined {
  if (cfg.queue === 'disk' && !cfg.spoolDir) throw new Error('capture_queue disk needs capture_spool_dir (the queue lives there)');
  const dir = cfg.spoolDir;
  if (!dir || names.length === 0) return undefined;
  mkdirSync(dir, { recursive: true });
  const gaps = crashGaps(dir, (sink) => (cfg.queue === 'disk' ? queueDir(dir, sink) : undefined), log);
  const writer = new StateWriter(dir);
  const acked = () =>
    Object.fromEntries([...names.map((n) => [n, 0]), ...sinks().map((s) => [s.name, s.stats().acked])]) as Record<string, number>;
  const state = (clean: boolean) => ({ run, sequence: sequence(), acked: acked(), clean });
  const every = Math.min(cfg.queueSyncMs || 1000, 1000);
  let last = 0;
  let failed = false;
  const write = (clean: boolean) => {
    last = Date.now();
    try {
      // a few hundred bytes once a second: synchronous, so that it is there when the process dies
      writer.writeNow(state(clean));
    } catch (err) {
      if (!failed)
        log.error({ dir, err: (err as Error).message }, 'cannot write the capture state; a crash of this run will not be accounted for');
      failed = true;
    }
  };
  write(false);
  // an idle broker has no flushes: the timer keeps the acknowledged positions current
  const timer = setInterval(() => tick(), every);
  timer.unref();
  const tick = () => {
    if (Date.now() - last >= every) write(false);
  };
  return {
    gaps,
    tick,
    stopped() {
      clearInterval(timer);
      write(true);
    },
  };
}
