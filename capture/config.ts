import { dirname } from 'node:path';
import type { KeySpec } from '../broker/config/spec.js';
import { ConfigError } from '../broker/config/errors.js';
import { ACTIONS } from './actions.js';
import { defaultKafkaClientConfig, kafkaClientKeys, kafkaClientProblem, type KafkaClientConfig } from './kafka.js';

/** One `capture_sink` line as its sink's definition read it (capture/sinks/): plain data, it crosses to the capture thread. */
export interface SinkConfig {
  kind: string;
  /** What follows the kind: a path, a topic or a URL. */
  target?: string;
}

export type PayloadPolicy = { mode: 'off' } | { mode: 'truncate'; bytes: number } | { mode: 'full' };

export interface CaptureConfig {
  sinks: SinkConfig[];
  /** `default`, `all`, or an explicit list of event.action values. */
  events: 'default' | 'all' | string[];
  payload: PayloadPolicy;
  format: 'ecs' | 'hicap';
  spoolDir?: string;
  spoolMaxBytes: number;
  queueMax: number;
  /** `capture_queue`: memory (with the spool) or disk (a write-ahead queue per sink, capture/queue/disk.ts). */
  queue: 'memory' | 'disk';
  queueSyncMs: number;
  queueMaxBytes: number;
  fileMaxBytes: number;
  fileMaxFiles: number;
  tls: { cafile?: string; certfile?: string; keyfile?: string };
  elastic: {
    namespace: string;
    apiKeyFile?: string;
    username?: string;
    passwordFile?: string;
    cafile?: string;
  };
  /** The capture_kafka_* keys of `capture_sink kafka`. */
  kafka: KafkaClientConfig;
}

export function defaultCaptureConfig(): CaptureConfig {
  return {
    sinks: [],
    events: 'default',
    payload: { mode: 'off' },
    format: 'ecs',
    spoolMaxBytes: 1024 ** 3,
    queueMax: 100_000,
    queue: 'memory',
    queueSyncMs: 1000,
    queueMaxBytes: 1024 ** 3,
    fileMaxBytes: 100 * 1024 ** 2,
    fileMaxFiles: 10,
    tls: {},
    elastic: { namespace: 'default' },
    kafka: defaultKafkaClientConfig(),
  };
}

/** The capture keys besides `capture_sink` (capture/sinks/index.ts, from the sink registry). */
export const captureKeys: KeySpec<CaptureConfig>[] = [
  {
    key: 'capture_events',
    usage: 'default | all | <action>[,<action>…]',
    doc: 'Which event.action values are captured. `default` leaves out the high-volume ones (ping, acknowledgements, outbound deliveries); `all` includes them.',
    default: 'default',
    scope: 'global',
    set(c, v) {
      v.count(1);
      const w = v.word(0);
      if (w === 'default' || w === 'all') {
        c.events = w;
        return;
      }
      const list = w.split(',').filter(Boolean);
      const unknown = list.filter((a) => !(ACTIONS as readonly string[]).includes(a));
      if (list.length === 0 || unknown.length)
        v.fail(
          `unknown event.action ${unknown.map((a) => `"${a}"`).join(', ') || '(empty list)'}; expected default, all or a comma list of: ${ACTIONS.join(', ')}`,
        );
      c.events = list;
    },
  },
  {
    key: 'capture_payload',
    usage: 'off | truncate <bytes> | full',
    doc: 'Whether publish payloads are copied into events (`mqtt.payload`): utf8 when valid, else base64 with `mqtt.payload_encoding`.',
    default: 'off',
    scope: 'global',
    set(c, v) {
      const mode = v.oneOf(['off', 'truncate', 'full'] as const);
      if (mode === 'truncate') {
        v.count(2);
        c.payload = { mode, bytes: v.int(1, 1, 16 * 1024 * 1024) };
      } else {
        v.count(1);
        c.payload = { mode };
      }
    },
  },
  {
    key: 'capture_format',
    usage: 'ecs | hicap',
    doc: 'Event shape: ECS (the documented contract) or the Flex4Apps HICAP shape for existing receivers.',
    default: 'ecs',
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.format = v.oneOf(['ecs', 'hicap'] as const);
    },
  },
  {
    key: 'capture_spool_dir',
    usage: '<directory>',
    doc: 'Where network sinks spool events while their receiver is down or slow. Without it, a full queue drops (and counts) events.',
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.spoolDir = v.path();
    },
  },
  {
    key: 'capture_spool_max_bytes',
    usage: '<bytes>',
    doc: 'Upper bound of the spool on disk per sink; past it events are dropped and counted.',
    default: '1073741824',
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.spoolMaxBytes = v.bytes();
    },
  },
  {
    key: 'capture_queue_max',
    usage: '<events>',
    doc: 'Events held in memory per sink before spooling (or dropping, without a spool).',
    default: '100000',
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.queueMax = v.int(0, 1, 100_000_000);
    },
  },
  {
    key: 'capture_queue',
    usage: 'memory | disk',
    doc: '`memory`: each sink queues capture_queue_max events in memory, then spools (a kill -9 loses the queue; the next start names the lost sequence numbers). `disk`: every event is written to a per-sink queue under capture_spool_dir before the sink sees it, and removed once the sink has it; a restart sends what was not acknowledged (a kill -9 loses nothing written; a machine crash at most capture_queue_sync_interval).',
    default: 'memory',
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.queue = v.oneOf(['memory', 'disk'] as const);
    },
  },
  {
    key: 'capture_queue_sync_interval',
    usage: '<duration>',
    doc: 'How often the disk queue is flushed to stable storage (fdatasync) and its acknowledged position written; 0: after every batch. Also how often the state that names a crash gap is written.',
    default: '1s',
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.queueSyncMs = v.durationMs(0, { min: '0', max: '1h' });
    },
  },
  {
    key: 'capture_queue_max_bytes',
    usage: '<bytes>',
    doc: 'Upper bound of the disk queue per sink; past it events are dropped and counted (capture-dropped, reason queue-full).',
    default: '1073741824',
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.queueMaxBytes = v.bytes(0, { min: '64k' });
    },
  },
  {
    key: 'capture_file_max_bytes',
    usage: '<bytes>',
    doc: 'The file sink rotates its file (renaming it to `.1`, `.2`, …) when it reaches this size.',
    default: '104857600',
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.fileMaxBytes = v.bytes();
    },
  },
  {
    key: 'capture_file_max_files',
    usage: '<count>',
    doc: 'Rotated capture files kept beside the current one.',
    default: '10',
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.fileMaxFiles = v.int(0, 0, 1000);
    },
  },
  ...(['cafile', 'certfile', 'keyfile'] as const).map((k): KeySpec<CaptureConfig> => ({
    key: `capture_tls_${k}`,
    usage: '<pem file>',
    doc: `TLS ${k === 'cafile' ? 'CA bundle that signs the Logstash server certificate' : k === 'certfile' ? 'client certificate presented to Logstash' : 'private key of the client certificate'} for \`capture_sink logstash tls://…\`.`,
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.tls[k] = v.path();
    },
  })),
  {
    key: 'capture_elasticsearch_namespace',
    usage: '<namespace>',
    doc: 'Data stream namespace: events go to `logs-mqtt.capture-<namespace>`.',
    default: 'default',
    scope: 'global',
    set(c, v) {
      v.count(1);
      const ns = v.word();
      if (!/^[a-z0-9_.]{1,100}$/.test(ns) || ns.includes('-')) v.fail('expected a lowercase data stream namespace without dashes');
      c.elastic.namespace = ns;
    },
  },
  {
    key: 'capture_elasticsearch_api_key_file',
    usage: '<file>',
    doc: 'File holding an Elasticsearch API key (the encoded form). Its content is never logged.',
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.elastic.apiKeyFile = v.path();
    },
  },
  {
    key: 'capture_elasticsearch_username',
    usage: '<user>',
    doc: 'Basic-auth user for Elasticsearch/OpenSearch (with capture_elasticsearch_password_file).',
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.elastic.username = v.word();
    },
  },
  {
    key: 'capture_elasticsearch_password_file',
    usage: '<file>',
    doc: 'File holding the basic-auth password. Its content is never logged.',
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.elastic.passwordFile = v.path();
    },
  },
  {
    key: 'capture_elasticsearch_cafile',
    usage: '<pem file>',
    doc: 'CA bundle that signs the Elasticsearch/OpenSearch server certificate.',
    scope: 'global',
    set(c, v) {
      v.count(1);
      c.elastic.cafile = v.path();
    },
  },
  ...kafkaClientKeys<CaptureConfig>('capture_kafka_', 'global', (c) => c.kafka, 'capture_sink kafka'),
];

/** Checks between capture keys, once the whole configuration is read. */
export function validateCapture(c: CaptureConfig): void {
  if (c.queue === 'disk' && !c.spoolDir)
    throw new ConfigError(undefined, 'capture_queue', 'disk needs capture_spool_dir (the queue lives there)');
  const kafka = c.sinks.some((s) => s.kind === 'kafka') ? kafkaClientProblem(c.kafka, 'capture_kafka_') : undefined;
  if (kafka) throw new ConfigError(undefined, 'capture_sink', kafka);
}

/** Directories capture writes into once running: each file sink's folder and the spool. */
export function captureStateDirs(c: CaptureConfig): string[] {
  return [...c.sinks.flatMap((s) => (s.kind === 'file' && s.target ? [dirname(s.target)] : [])), ...(c.spoolDir ? [c.spoolDir] : [])];
}
