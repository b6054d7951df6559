import { closeSync, openSync, readFileSync, readSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { DropEpisode } from '../runner.js';
import { RUN_FILE } from './disk.js';

/**
 * What a run of capture leaves in `<capture_spool_dir>/capture-state.json`, rewritten every
 * capture_queue_sync_interval while it runs: its run id (service.id, also the prefix of every
 * event.id), the last event.sequence it had recorded, the last each sink had taken, and whether
 * it stopped cleanly. The next start reads it to name what a crash lost.
 */
export interface RunState {
  run: string;
  sequence: number;
  acked: Record<string, number>;
  clean: boolean;
}

const NAME = 'capture-state.json';

/**
 * The ranges of event.sequence the previous run cannot account for, per sink it had: after a clean
 * stop none; after a crash (kill -9, power loss) the sequences after the last one the sink had
 * taken (or, with a disk queue, the last one in the queue, which the next start sends) up to the
 * last one the state file knows. Events recorded after the state was last written (at most one
 * sync interval) are not known to anyone and not named: the range says "at least these".
 */
export function crashGaps(spoolDir: string, queueDirOf: (sink: string) => string | undefined, log: Logger): DropEpisode[] {
  let prev: RunState;
  try {
    prev = JSON.parse(readFileSync(join(spoolDir, NAME), 'utf8')) as RunState;
    if (typeof prev.run !== 'string' || !Number.isSafeInteger(prev.sequence) || typeof prev.acked !== 'object')
      throw new Error('not a capture state');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      log.error(
        { file: join(spoolDir, NAME), err: (err as Error).message },
        'capture state unreadable; a crash of the previous run cannot be accounted for',
      );
    return [];
  }
  if (prev.clean) return [];
  log.warn({ run: prev.run, lastSequence: prev.sequence }, 'the previous capture run did not stop cleanly');
  return Object.entries(prev.acked).map(([sink, acked]) => {
    const dir = queueDirOf(sink);
    const accounted = Math.max(acked, dir ? lastQueued(dir, prev.run) : 0);
    const last = Math.max(prev.sequence, accounted);
    return { sink, reason: 'crash', run: prev.run, first: accounted + 1, last, count: last - accounted };
  });
}

/** Writes the state of this run, replacing the file whole. */
export class StateWriter {
  private readonly file: string;

  constructor(spoolDir: string) {
    this.file = join(spoolDir, NAME);
  }

  writeNow(s: RunState): void {
    writeFileSync(`${this.file}.tmp`, JSON.stringify(s));
    renameSync(`${this.file}.tmp`, this.file);
  }
}

/** The event.sequence of the last record `run` wrote to the disk queue in `dir` (0: none, or another run wrote last). */
export function lastQueued(dir: string, run: string): number {
  let from: number;
  try {
    const [who, seg] = readFileSync(join(dir, RUN_FILE), 'utf8').trim().split(' ');
    if (who !== run) return 0;
    from = Number(seg);
  } catch {
    return 0;
  }
  const segs = readdirSync(dir)
    .filter((f) => /^\d{16}\.q$/.test(f) && Number(f.slice(0, 16)) >= from)
    .sort()
    .reverse();
  for (const f of segs) {
    const seq = lastSequenceIn(join(dir, f));
    if (seq) return seq;
  }
  return 0;
}

/** The sequence of the last whole record of a queue segment (0: none). */
export function lastSequenceIn(file: string): number {
  const size = statSync(file).size;
  if (size === 0) return 0;
  const fd = openSync(file, 'r');
  try {
    const from = Math.max(0, size - 1024 * 1024);
    const buf = Buffer.allocUnsafe(size - from);
    readSync(fd, buf, 0, buf.length, from);
    const lastNl = buf.lastIndexOf(0x0a);
    if (lastNl < 0) return 0;
    const start = buf.lastIndexOf(0x0a, lastNl - 1) + 1;
    return Number(buf.toString('latin1', start, buf.indexOf(0x09, start))) || 0;
  } finally {
    closeSync(fd);
  }
}
