import { join } from 'node:path';
import type { Logger } from 'pino';
import type { CaptureConfig, SinkConfig } from './config.js';
import { DiskQueue } from './queue/disk.js';
import { SinkRunner, type DropEpisode, type RunnerOptions } from './runner.js';
import { createSink, folderName, type SinkEnv } from './sinks/index.js';
import { Spool } from './spool.js';

export interface RunnerEnv {
  config: CaptureConfig;
  sinkEnv: SinkEnv;
  log: Logger;
  backoff: { baseMs: number; maxMs: number };
  /** This run's id (service.id): a disk queue marks its records with it. */
  run: string;
  onDrops(ep: DropEpisode): void;
}

/** Where `capture_queue disk` keeps the queue of a sink. */
export const queueDir = (spoolDir: string, sinkName: string): string => join(spoolDir, 'queue', folderName(sinkName));

/**
 * One sink and its delivery loop; `count` takes this sink's counts. A sink that spools (the network
 * sinks) gets its disk queue under `capture_queue disk`, else its spool when capture_spool_dir is set.
 */
export function startRunner(sc: SinkConfig, name: string, env: RunnerEnv, count: RunnerOptions['count']): SinkRunner {
  const { sink, spools } = createSink(sc, env.sinkEnv, name);
  const cfg = env.config;
  let spool: Spool | undefined;
  let disk: DiskQueue | undefined;
  if (spools && cfg.queue === 'disk' && cfg.spoolDir) {
    disk = new DiskQueue({
      dir: queueDir(cfg.spoolDir, name),
      run: env.run,
      maxBytes: cfg.queueMaxBytes,
      syncMs: cfg.queueSyncMs,
      cacheMax: cfg.queueMax,
      log: env.log.child({ sink: name }),
    });
  } else if (spools && cfg.spoolDir) {
    try {
      spool = new Spool(join(cfg.spoolDir, folderName(name)), cfg.spoolMaxBytes, env.log.child({ sink: name }));
    } catch (err) {
      env.log.error(
        { sink: name, dir: cfg.spoolDir, err: (err as Error).message },
        'capture spool unusable; this sink drops (and counts) what its queue cannot hold',
      );
    }
  }
  return new SinkRunner(sink, {
    queueMax: cfg.queueMax,
    spool,
    disk,
    log: env.log.child({ sink: name }),
    backoff: env.backoff,
    onDrops: env.onDrops,
    count,
  });
}
