import { join } from 'node:path';
import type { Logger } from 'pino';
import type { CaptureConfig, SinkConfig } from './config.js';
import { SinkRunner, type DropEpisode, type RunnerOptions } from './runner.js';
import { createSink, folderName, type SinkEnv } from './sinks/index.js';
import { Spool } from './spool.js';

export interface RunnerEnv {
  config: CaptureConfig;
  sinkEnv: SinkEnv;
  log: Logger;
  backoff: { baseMs: number; maxMs: number };
  onDrops(ep: DropEpisode): void;
}

/** One sink and its delivery loop, with its spool when the sink spools and capture_spool_dir is set; `count` takes this sink's counts. */
export function startRunner(sc: SinkConfig, name: string, env: RunnerEnv, count: RunnerOptions['count']): SinkRunner {
  const { sink, spools } = createSink(sc, env.sinkEnv, name);
  const cfg = env.config;
  let spool: Spool | undefined;
  if (spools && cfg.spoolDir) {
    try {
      spool = new Spool(join(cfg.spoolDir, folderName(name)), cfg.spoolMaxBytes, env.log.child({ sink: name }));
    } catch (err) {
      env.log.error({ sink: name, dir: cfg.spoolDir, err: (err as Error).message }, 'capture spool unusable; this sink drops (and counts) what its queue cannot hold');
    }
  }
  return new SinkRunner(sink, {
    queueMax: cfg.queueMax,
    spool,
    log: env.log.child({ sink: name }),
    backoff: env.backoff,
    onDrops: env.onDrops,
    count,
  });
}
