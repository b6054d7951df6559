/**
 * What every Kafka client of mqprobe shares (the capture sink here, the bridge later): the connection keys
 * (SASL, certificates, compression, acks, idempotence), their translation into @platformatic/kafka options,
 * and errors a user can act on. See docs/kafka.md for the choice of client library.
 */
import { readFileSync } from 'node:fs';
import zlib from 'node:zlib';
import type { BaseOptions } from '@platformatic/kafka';
import type { KeySpec, ValueReader } from '../broker/config/spec.js';

export const COMPRESSIONS = ['none', 'gzip', 'lz4', 'zstd'] as const;
export const SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;

/** Plain data: it crosses to the capture thread. */
export interface KafkaClientConfig {
  sasl?: { mechanism: (typeof SASL_MECHANISMS)[number]; username?: string; passwordFile?: string };
  cafile?: string;
  certfile?: string;
  keyfile?: string;
  compression: (typeof COMPRESSIONS)[number];
  acks: 'all' | 'leader';
  idempotent: boolean;
}

export function defaultKafkaClientConfig(): KafkaClientConfig {
  return { compression: 'none', acks: 'all', idempotent: true };
}

/** `kafka://host:port[,host:port…]/<topic>` or `kafkas://…` (TLS). */
export interface KafkaTarget {
  tls: boolean;
  brokers: string[];
  topic: string;
}

const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;

/** A broker list `host:port[,host:port…]`, or an error message. */
export function parseBrokerList(s: string): string[] | string {
  const brokers = s.split(',');
  for (const b of brokers) {
    const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(b);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) return `expected host:port, got "${b}"`;
  }
  return brokers;
}

export function parseKafkaTarget(s: string): KafkaTarget | string {
  const m = /^(kafkas?):\/\/([^/]+)\/([^/]*)$/.exec(s);
  if (!m) return `expected kafka://host:port[,host:port…]/<topic> or kafkas://…, got "${s}"`;
  const brokers = parseBrokerList(m[2]);
  if (typeof brokers === 'string') return brokers;
  if (!TOPIC.test(m[3]) || m[3] === '.' || m[3] === '..') return `"${m[3]}" is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)`;
  return { tls: m[1] === 'kafkas', brokers, topic: m[3] };
}

/** The connection keys, under a prefix (`capture_kafka_` for the sink), on whatever config holds a KafkaClientConfig. */
export function kafkaClientKeys<T>(
  prefix: string,
  scope: KeySpec<T>['scope'],
  of: (c: T) => KafkaClientConfig,
  what: string,
): KeySpec<T>[] {
  const key = (
    name: string,
    usage: string,
    doc: string,
    set: (k: KafkaClientConfig, v: ValueReader) => void,
    dflt?: string,
  ): KeySpec<T> => ({
    key: `${prefix}${name}`,
    usage,
    doc,
    scope,
    ...(dflt ? { default: dflt } : {}),
    set(c, v) {
      v.count(1);
      set(of(c), v);
    },
  });
  return [
    key(
      'sasl_mechanism',
      SASL_MECHANISMS.join(' | '),
      `SASL mechanism ${what} authenticates with (with ${prefix}username and ${prefix}password_file).`,
      (k, v) => {
        k.sasl = { ...k.sasl, mechanism: v.oneOf(SASL_MECHANISMS) };
      },
    ),
    key('username', '<user>', `SASL user of ${what}.`, (k, v) => {
      k.sasl = { mechanism: k.sasl?.mechanism ?? 'scram-sha-512', ...k.sasl, username: v.word() };
    }),
    key('password_file', '<file>', `File holding the SASL password of ${what}. Its content is never logged.`, (k, v) => {
      k.sasl = { mechanism: k.sasl?.mechanism ?? 'scram-sha-512', ...k.sasl, passwordFile: v.path() };
    }),
    key('cafile', '<pem file>', `CA bundle that signs the Kafka brokers' certificates (kafkas://).`, (k, v) => (k.cafile = v.path())),
    key('certfile', '<pem file>', `Client certificate ${what} presents to Kafka (kafkas://).`, (k, v) => (k.certfile = v.path())),
    key('keyfile', '<pem file>', `Private key of that client certificate.`, (k, v) => (k.keyfile = v.path())),
    key(
      'compression',
      COMPRESSIONS.join(' | '),
      `Compression of the record batches ${what} sends. zstd needs Node.js 22.15 or later (node:zlib).`,
      (k, v) => (k.compression = v.oneOf(COMPRESSIONS)),
      'none',
    ),
    key(
      'acks',
      'all | leader',
      `Acknowledgement ${what} waits for: all in-sync replicas, or the partition leader only.`,
      (k, v) => (k.acks = v.oneOf(['all', 'leader'] as const)),
      'all',
    ),
    key(
      'idempotence',
      'true | false',
      `Idempotent producer (no duplicate from ${what}'s own retries; needs acks all).`,
      (k, v) => (k.idempotent = v.bool()),
      'true',
    ),
  ];
}

/** Checks between the keys, once the whole configuration is read: a config error names what to change. */
export function kafkaClientProblem(k: KafkaClientConfig, prefix: string): string | undefined {
  if (k.compression === 'zstd' && typeof (zlib as { zstdCompressSync?: unknown }).zstdCompressSync !== 'function')
    return `${prefix}compression zstd needs Node.js 22.15 or later (this is ${process.version}); use lz4 or gzip`;
  if (k.idempotent && k.acks !== 'all') return `${prefix}idempotence true needs ${prefix}acks all`;
  if (k.sasl && (!k.sasl.username || !k.sasl.passwordFile)) return `SASL needs both ${prefix}username and ${prefix}password_file`;
  if (!!k.certfile !== !!k.keyfile) return `${prefix}certfile and ${prefix}keyfile go together`;
  return undefined;
}

/** @platformatic/kafka options for one client; files are read now (the password at each connection). */
export function clientOptions(k: KafkaClientConfig, brokers: string[], tls: boolean, clientId: string): BaseOptions {
  const sasl = k.sasl;
  return {
    clientId,
    bootstrapBrokers: brokers,
    connectTimeout: 5000,
    timeout: 10_000,
    // a failing call comes back soon: the caller's queue, spool and backoff take over (idempotent retries <= 1 would mean "forever")
    retries: 2,
    retryDelay: 250,
    ...(tls
      ? {
          tls: {
            ...(k.cafile ? { ca: readFileSync(k.cafile) } : {}),
            ...(k.certfile && k.keyfile ? { cert: readFileSync(k.certfile), key: readFileSync(k.keyfile) } : {}),
          },
        }
      : {}),
    ...(sasl
      ? {
          sasl: {
            mechanism: sasl.mechanism.toUpperCase() as 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512',
            username: sasl.username,
            password: () => readFileSync(sasl.passwordFile!, 'utf8').replace(/\r?\n$/, ''),
          },
        }
      : {}),
  };
}

interface ErrorTree {
  message?: string;
  code?: string;
  apiCode?: number;
  errors?: ErrorTree[];
  cause?: ErrorTree;
}

function* walk(e: ErrorTree | undefined): Generator<ErrorTree> {
  if (!e || typeof e !== 'object') return;
  yield e;
  for (const x of e.errors ?? []) yield* walk(x);
  yield* walk(e.cause);
}

/** The Kafka protocol error codes anywhere in the error (a client error nests the broker's answers). */
export function apiCodes(err: unknown): Set<number> {
  return new Set([...walk(err as ErrorTree)].flatMap((e) => (typeof e.apiCode === 'number' ? [e.apiCode] : [])));
}

/** Record-level refusals: the record, not Kafka, is at fault (MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, INVALID_RECORD). */
export const RECORD_REFUSED = [10, 18, 87];

/** One line a user can act on, for a failed Kafka call. */
export function explainKafkaError(err: unknown, brokers: string[], topic?: string): string {
  const all = [...walk(err as ErrorTree)];
  const codes = apiCodes(err);
  if (all.some((e) => e.code === 'PLT_KFK_AUTHENTICATION') || codes.has(58))
    return `Kafka refused the SASL authentication (wrong user or password, or a mechanism the listener does not enable) at ${brokers.join(',')}`;
  if (topic && (codes.has(3) || all.some((e) => e.message === `Unknown topic ${topic}.`)))
    return `Kafka topic "${topic}" does not exist and the broker does not create topics on demand (auto.create.topics.enable=false): create it`;
  if (codes.has(29)) return `Kafka refused access to topic "${topic}" (TOPIC_AUTHORIZATION_FAILED)`;
  const refused = all.find((e) => e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || e.code === 'ETIMEDOUT' || e.code === 'ECONNRESET');
  if (all.some((e) => e.message === 'Cannot connect to any broker.') || refused)
    return `no Kafka bootstrap server reachable at ${brokers.join(',')}${refused ? ` (${refused.code})` : ''}`;
  const leaf = all.filter((e) => e.message).at(-1);
  return `Kafka: ${leaf?.message ?? String(err)}${codes.size ? ` (error code ${[...codes].join(',')})` : ''}`;
}
