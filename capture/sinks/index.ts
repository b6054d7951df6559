import type { Logger } from 'pino';
import type { Aedes } from 'aedes';
import type { CaptureConfig, SinkConfig } from '../config.js';
import type { Sink, SinkIO } from '../runner.js';
import { SearchSink } from './elasticsearch.js';
import { fileSink } from './file.js';
import { beatsSink } from './beats.js';
import { logstashSink } from './logstash.js';
import { VERSION } from '../../broker/version.js';
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

/** The sink of one `capture_sink` line, named `name` (sinkNames), and whether it spools (network sinks do, when capture_spool_dir is set). */
export function createSink(c: SinkConfig, env: SinkEnv, name: string): { sink: Sink; spools: boolean } {
  const { io, spools } = sinkIO(c, env);
  return { sink: { ...io, name }, spools };
}

function sinkIO(c: SinkConfig, env: SinkEnv): { io: SinkIO; spools: boolean } {
  const log = env.log.child({ name: `capture.${c.kind}` });
  switch (c.kind) {
    case 'stdout':
      return { io: stdoutSink(env.stdout), spools: false };
    case 'file':
      return { io: fileSink({ path: c.path, maxBytes: env.config.fileMaxBytes, maxFiles: env.config.fileMaxFiles }), spools: false };
    case 'mqtt':
      if (!env.aedes) throw new Error('the mqtt capture sink needs the broker');
      return { io: mqttSink(env.aedes, c.topic), spools: false };
    case 'logstash':
      return { io: logstashSink({ url: c.url, tls: env.config.tls, log, resendBytes: env.resendBytes }), spools: true };
    case 'beats':
      return { io: beatsSink({ url: c.url, tls: env.config.tls, log, metadata: { beat: 'mqprobe', version: VERSION } }), spools: true };
    case 'elasticsearch':
    case 'opensearch': {
      const s = new SearchSink({ kind: c.kind, url: c.url, elastic: env.config.elastic, log });
      return { io: { write: (lines) => s.write(lines), close: () => s.close() }, spools: true };
    }
  }
}

/** The name of each sink as metrics, logs and the spool folder know it; a repeated sink gets `#2`, `#3`… */
export function sinkNames(sinks: readonly SinkConfig[]): string[] {
  const seen = new Set<string>();
  return sinks.map((sc) => {
    const base = sinkName(sc);
    let name = base;
    for (let i = 2; seen.has(name); i++) name = `${base}#${i}`;
    seen.add(name);
    return name;
  });
}

function sinkName(sc: SinkConfig): string {
  switch (sc.kind) {
    case 'stdout':
      return 'stdout';
    case 'file':
      return `file:${sc.path}`;
    case 'mqtt':
      return `mqtt:${sc.topic}`;
    case 'logstash':
    case 'beats':
      return `${sc.kind}:${sc.url.protocol}//${sc.url.host}`;
    case 'elasticsearch':
    case 'opensearch':
      return `${sc.kind}:${sc.url.host}`;
  }
}

/** A sink name as a folder name (spool) that stays the same from one run to the next. */
export function folderName(sinkName: string): string {
  return sinkName.replace(/[^A-Za-z0-9._-]+/g, '_');
}
