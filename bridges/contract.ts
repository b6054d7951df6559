import type { Logger } from 'pino';
import type { StatusRegistry } from '../broker/status.js';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { KeySpec } from '../broker/config/spec.js';
import type { BeatBlock } from '../broker/config/types.js';
import type { SseConfig } from '../broker/http/sse-config.js';
import type { HttpAuth } from '../broker/http-auth.js';
import type { BrokerApi } from '../broker/engine/api.js';
import type { IndicatorOutlet } from '../detect/indicators.js';

/** Keys every beat block accepts (`beat_*`). */
export interface CommonBeatConfig {
  /** Default `beats/<name>`. */
  topicPrefix: string;
  format: 'raw' | 'ngsi' | 'ngsi-ld';
  output: 'mqtt' | 'sse' | 'both';
  /** `beat_qos`: QoS of the beat's publishes unless a record says otherwise (the frame always sets it; default 0). */
  qos?: 0 | 1 | 2;
}

/**
 * What the broker hands the frame (bridges/index.ts). Beats never see it: they get a BridgeContext.
 * Built by app/assemble.ts from the running broker.
 */
export interface BridgeHost {
  /** The typed broker API (its publishes, in-process subscriptions and connections); never the engine. */
  broker: BrokerApi;
  log: Logger;
  metrics: Registry;
  /** The `http_listener` instance; the frame registers /sse and /beats/<name>/… on it before it listens. */
  http?: FastifyInstance;
  /** `persistence_redis_url`: beat stores live in Redis when set. */
  redisUrl?: string;
  /** Where the OpenCTI beat hands its indicator set to the detectors. */
  intel: IndicatorOutlet;
  /** Directory for the beats' checkpoint files when there is no Redis (the broker's `persistence_location`). */
  stateDir: string;
  /** The `http_sse_*` settings (defaults when absent). */
  sse?: SseConfig;
  /** Who the HTTP listener's clients are and what their ACL lets them read; required with `http`. */
  httpAuth?: HttpAuth;
  /** Where each beat reports its state, records and last error (the web view's Health tab). */
  status?: StatusRegistry;
}

/**
 * What a beat module exports: its name, its `<name>_*` keys, and a factory. The frame
 * validates the block with `keys` (errors name file, line and key), then calls `check`
 * for cross-key rules (required keys), then `create` at broker start.
 */
export interface BeatDefinition<C> {
  name: string;
  /** One-paragraph description for docs/configuration.md. */
  doc: string;
  keys: KeySpec<C>[];
  defaults(): C;
  check?(cfg: C, block: BeatBlock): void;
  create(cfg: C, common: CommonBeatConfig): Bridge;
}

/** A running bridge. The frame restarts it with backoff if start() rejects or it reports failure. */
export interface Bridge {
  start(ctx: BridgeContext): Promise<void>;
  stop(): Promise<void>;
}

/** One record a beat emits; the frame turns it into raw JSON, NGSI v2 or NGSI-LD and sends it to MQTT and/or SSE. */
export interface BeatRecord {
  /** Topic below the beat's prefix, e.g. `conn` → `beats/zeek/conn`. */
  subtopic: string;
  /** The typed source record (the `raw` format). */
  data: Record<string, unknown>;
  /** For NGSI formats: entity type (CamelCase) and id (without the urn: prefix). */
  entity?: { type: string; id: string };
  /** Optional custom NGSI mapping; default: every field of `data` becomes an attribute. */
  ngsi?: (format: 'ngsi' | 'ngsi-ld') => Record<string, unknown>;
  qos?: 0 | 1;
  retain?: boolean;
  /** When the source observed the record (epoch ms): NGSI `TimeInstant` metadata / NGSI-LD `observedAt`. */
  time?: number;
}

/** A small persistent key-value store for checkpoints: memory by default, Redis when the broker uses Redis. */
export interface BeatStore {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  /** Keys starting with prefix. */
  keys(prefix: string): Promise<string[]>;
}

export interface BridgeContext {
  readonly name: string;
  readonly common: CommonBeatConfig;
  /** Child logger `beat.<name>`; secrets are redacted by path in the root logger. */
  readonly log: Logger;
  /** The broker's prom-client registry; name metrics `mqprobe_beat_<name>_*`. */
  readonly metrics: Registry;
  readonly store: BeatStore;
  /** Emits a record through the beat's configured format and outputs. Resolves once the broker accepted it. */
  emit(record: BeatRecord): Promise<void>;
  /** Publishes raw bytes on an absolute topic as internal client `$beat/<name>` (captured like any publish; the broker does not apply `acl_file` to internal clients). */
  publish(topic: string, payload: Buffer | string, opts?: { qos?: 0 | 1; retain?: boolean }): Promise<void>;
  /**
   * Subscribes inside the broker (for command topics): the handler sees every accepted publish whose topic
   * matches the filter, with its publisher's client id and username (the beat's own publishes excluded).
   * Returns an unsubscribe function.
   */
  subscribe(
    filter: string,
    handler: (topic: string, payload: Buffer, publisher: { clientId?: string; username?: string }) => void,
  ): Promise<() => Promise<void>>;
  /**
   * Registers routes on the broker's HTTP listener (`http_listener`), mounted under `/beats/<name>`
   * (a route `/notifications` answers at `/beats/<name>/notifications`); rejects with a clear error if there
   * is none. May be called once per start; a restarted bridge registers afresh.
   */
  http(register: (app: FastifyInstance) => void | Promise<void>): Promise<void>;
  /**
   * Follows the records another beat (by name, e.g. `zeek`) emits, as emitted: typed data, whatever its
   * `beat_format` and `beat_output`. The handler runs synchronously inside that beat's emit and must not
   * change the record; an exception from it fails this beat (restart). Returns a function that stops following.
   */
  records(beat: string, handler: (record: BeatRecord) => void): () => void;
  /** Tells the frame the upstream failed after start: it will stop and restart the bridge with backoff. */
  fail(err: Error): void;
  /** Where a threat-intel beat offers its live indicator set to the detectors. */
  readonly intel: IndicatorOutlet;
  /** The broker's state directory (`persistence_location`), for files a beat keeps (e.g. a PKI folder). */
  readonly stateDir: string;
}
