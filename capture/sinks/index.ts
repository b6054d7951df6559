import type { Logger } from 'pino';
import type { Aedes } from 'aedes';
import type { CaptureConfig, SinkConfig } from '../config.js';
import type { Sink } from '../runner.js';
import { SearchSink } from './elasticsearch.js';
import { fileSink } from './file.js';
import { logstashSink } from './logstash.js';
import { mqttSink } from './mqtt.js';
import { stdoutSink } from './stdout.js';

export interface SinkEnv {
  /** The broker, for the mqtt sink (which runs on the broker's thread only). */
  aedes?: Aedes;
  config: CaptureConfig;
  log: Logger;
  stdout?: NodeJS.WritableStream;
  resendBytes?: number;
}

/** The sink of one `capture_sink` line, and whether it spools (network sinks do, when capture_spool_dir is set). */
export function createSink(c: SinkConfig, env: SinkEnv): { sink: Sink; spools: boolean } {
  const log = env.log.child({ name: `capture.${c.kind}` });
  switch (c.kind) {
    case 'stdout':
      return { sink: stdoutSink(env.stdout), spools: false };
    case 'file':
      return { sink: fileSink({ path: c.path, maxBytes: env.config.fileMaxBytes, maxFiles: env.config.fileMaxFiles }), spools: false };
    case 'mqtt':
      if (!env.aedes) throw new Error('the mqtt capture sink needs the broker');
      return { sink: mqttSink(env.aedes, c.topic), spools: false };
    case 'logstash':
      return { sink: logstashSink({ url: c.url, tls: env.config.tls, log, resendBytes: env.resendBytes }), spools: true };
    case 'elasticsearch':
    case 'opensearch': {
      const s = new SearchSink({ kind: c.kind, url: c.url, elastic: env.config.elastic, log });
      return { sink: { name: `${c.kind}:${c.url.host}`, write: (lines) => s.write(lines), close: () => s.close() }, spools: true };
    }
  }
}

/** A sink name as a folder name (spool) that stays the same from one run to the next. */
export function folderName(sinkName: string): string {
  return sinkName.replace(/[^A-Za-z0-9._-]+/g, '_');
}
