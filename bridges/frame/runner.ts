import type { Logger } from 'pino';
import type { StatusReport } from '../../broker/status.js';
import type { Counter, Gauge } from 'prom-client';
import type { BeatRecord, Bridge, BridgeContext, BridgeHost } from '../contract.js';
import { isValidFilter, isValidTopic, levelsMatch } from '../../broker/auth/topic-filter.js';
import { FileStore, RedisStore, type ClosableStore } from '../shared/store.js';
import type { SseHub } from '../../broker/http/sse-hub.js';
import { counter, gauge } from '../../broker/metrics.js';
import { InternalClient } from './internal-client.js';
import { encodeRecord } from './format.js';
import type { BeatHttp } from './http.js';
import type { ParsedBeat } from './config.js';
import type { RecordBus } from './record-bus.js';

/** Restart delays double from the first to the last; a beat that ran this long before failing starts again from the first. */
export const RESTART_DELAY_MS = { first: 1000, max: 60_000, healthyAfter: 60_000 };
/** How long broker start waits for a beat's start(): a slow upstream must not hold the listeners back. */
const START_WAIT_MS = 5000;
/** How long a beat's stop() may take before the frame moves on without it. */
const STOP_WAIT_MS = 10_000;

export interface FrameParts {
  host: BridgeHost;
  hub?: SseHub;
  http?: BeatHttp;
  /** Where every beat's emitted records are offered to the beats that follow them (`ctx.records`). */
  bus?: RecordBus;
}

interface FrameMetrics {
  up: Gauge<'beat'>;
  restarts: Counter<'beat'>;
  records: Counter<'beat'>;
}

/** One attempt at running a bridge: the context it got is valid until the attempt ends. */
interface Attempt {
  bridge?: Bridge;
  ctx: BridgeContext;
  live: boolean;
  failed: boolean;
  startedAt?: number;
  unmountHttp?: () => Promise<void>;
  unsubscribes: Set<() => void>;
  /** Set once the attempt is being ended (stop or failure); ending twice waits for the first. */
  ending?: Promise<void>;
}

/**
 * Runs one configured beat: its store, its internal MQTT client `$beat/<name>`, and its bridge,
 * which is created afresh and restarted with doubling delays whenever start() rejects or the bridge
 * calls ctx.fail(). Nothing a bridge does can stop the broker: failures are logged, counted
 * (`mqprobe_beat_restarts_total`) and retried.
 */
export class BeatRunner {
  readonly name: string;
  readonly log: Logger;
  private readonly metrics: FrameMetrics;
  private readonly status?: StatusReport;
  private store?: ClosableStore;
  private client?: InternalClient;
  private current?: Attempt;
  private consecutiveFailures = 0;
  private timer?: NodeJS.Timeout;
  private stopping = false;

  constructor(
    private readonly parts: FrameParts,
    private readonly beat: ParsedBeat,
  ) {
    this.name = beat.block.name;
    this.log = parts.host.log.child({ name: `beat.${this.name}` });
    const reg = parts.host.metrics;
    this.metrics = {
      up: gauge(reg, 'mqprobe_beat_up', '1 while the beat runs, 0 while it waits to be restarted.', ['beat']),
      restarts: counter(reg, 'mqprobe_beat_restarts_total', 'Beat failures that led to a restart.', ['beat']),
      records: counter(reg, 'mqprobe_beat_records_total', 'Records the beat emitted.', ['beat']),
    };
    this.status = parts.host.status?.register('beat', this.name, 'starting');
  }

  async start(): Promise<void> {
    const { host, hub } = this.parts;
    const { output, topicPrefix } = this.beat.common;
    this.store = host.redisUrl ? new RedisStore(host.redisUrl, this.name, this.log) : FileStore.forBeat(host.stateDir, this.name, this.log);
    if (output !== 'sse') this.client = new InternalClient(host.broker, `$beat/${this.name}`, this.log);
    if (output === 'mqtt') hub?.exclude(topicPrefix);
    if (output !== 'mqtt' && !hub)
      this.log.warn(
        `beat ${this.name}: beat_output ${output} needs http_listener for /sse; ${output === 'sse' ? 'its records go nowhere' : 'records go to MQTT only'}`,
      );
    this.metrics.up.set({ beat: this.name }, 0);
    await Promise.race([this.attempt(), new Promise((r) => setTimeout(r, START_WAIT_MS).unref())]);
  }

  /** Stops the bridge (it finishes what it has in hand), then the internal client after its last publish, then the store. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    if (this.current) await this.end(this.current);
    await this.client?.end();
    await this.store?.close();
    this.metrics.up.set({ beat: this.name }, 0);
    this.status?.state('stopped');
  }

  private async attempt(): Promise<void> {
    if (this.stopping) return;
    const a: Attempt = { live: true, failed: false, unsubscribes: new Set(), ctx: undefined as unknown as BridgeContext };
    a.ctx = this.context(a);
    this.current = a;
    try {
      a.bridge = this.beat.def.create(this.beat.cfg, this.beat.common);
      await a.bridge.start(a.ctx);
    } catch (err) {
      await this.failed(a, err);
      return;
    }
    if (a.failed || this.stopping) return;
    a.startedAt = Date.now();
    this.metrics.up.set({ beat: this.name }, 1);
    this.status?.state('running');
    this.log.info(`beat ${this.name} started`);
  }

  private async failed(a: Attempt, err: unknown): Promise<void> {
    if (a.failed || !a.live || this.stopping) return;
    a.failed = true;
    this.metrics.up.set({ beat: this.name }, 0);
    this.metrics.restarts.inc({ beat: this.name });
    this.status?.state('restarting');
    this.status?.error(err);
    if (a.startedAt !== undefined && Date.now() - a.startedAt >= RESTART_DELAY_MS.healthyAfter) this.consecutiveFailures = 0;
    const delay = Math.min(RESTART_DELAY_MS.max, RESTART_DELAY_MS.first * 2 ** this.consecutiveFailures++);
    this.log.error({ err: errorMessage(err) }, `beat ${this.name} failed: ${errorMessage(err)}; restarting in ${delay} ms`);
    await this.end(a);
    if (this.stopping) return;
    this.timer = setTimeout(() => void this.attempt(), delay);
  }

  /** Stops an attempt's bridge and takes back what it registered; its context is dead afterwards. */
  private end(a: Attempt): Promise<void> {
    a.ending ??= this.endOnce(a);
    return a.ending;
  }

  private async endOnce(a: Attempt): Promise<void> {
    for (const unsubscribe of a.unsubscribes) unsubscribe();
    a.unsubscribes.clear();
    await a.unmountHttp?.().catch(() => undefined);
    a.unmountHttp = undefined;
    if (a.bridge) {
      // the context stays valid while the bridge stops, so it can finish the batch in hand and checkpoint it
      const stopped = a.bridge.stop().then(
        () => true,
        (err: unknown) => {
          this.log.warn({ err: errorMessage(err) }, `beat ${this.name}: stop failed: ${errorMessage(err)}`);
          return true;
        },
      );
      const timedOut = new Promise<boolean>((r) => setTimeout(() => r(false), STOP_WAIT_MS).unref());
      if (!(await Promise.race([stopped, timedOut]))) this.log.warn(`beat ${this.name} did not stop within ${STOP_WAIT_MS} ms`);
    }
    a.live = false;
  }

  private context(a: Attempt): BridgeContext {
    const { host, hub, http, bus } = this.parts;
    const { common } = this.beat;
    const name = this.name;
    const ownId = `$beat/${name}`;
    const dead = () => new Error(`beat ${name} is stopped`);
    const publish = (topic: string, payload: Buffer | string, qos: 0 | 1 | 2, retain: boolean) => {
      if (!a.live) throw dead();
      if (!this.client) throw new Error(`beat ${name} has beat_output sse: it does not publish to MQTT`);
      return this.client.publish(topic, payload, { qos, retain });
    };
    const records = this.metrics.records.labels({ beat: name });
    return {
      name,
      common,
      log: this.log,
      metrics: host.metrics,
      store: this.store!,
      intel: host.intel,
      stateDir: host.stateDir,
      // not async: the QoS 0 records of one tick share the internal client's one promise
      emit: (record: BeatRecord) => {
        try {
          if (!a.live) throw dead();
          const topic = `${common.topicPrefix}/${record.subtopic}`;
          if (!isValidTopic(topic)) throw new Error(`beat ${name}: invalid topic "${topic.slice(0, 200)}"`);
          const payload = encodeRecord(name, common.format, record);
          records.inc();
          this.status?.count();
          bus?.deliver(name, record);
          if (common.output !== 'sse') return publish(topic, payload, record.qos ?? common.qos, record.retain ?? false);
          hub?.push(topic, payload);
          return DONE;
        } catch (err) {
          return Promise.reject(err);
        }
      },
      publish: async (topic, payload, opts = {}) => {
        if (!isValidTopic(topic)) throw new Error(`beat ${name}: invalid topic "${topic.slice(0, 200)}"`);
        await publish(topic, payload, opts.qos ?? common.qos, opts.retain ?? false);
      },
      subscribe: async (filter, handler) => {
        if (!a.live || a.ending) throw dead();
        if (!isValidFilter(filter)) throw new Error(`beat ${name}: invalid topic filter "${filter.slice(0, 200)}"`);
        const levels = filter.split('/');
        const unsubscribe = host.broker.on('publish', (packet, client) => {
          if (client?.id === ownId || packet.topic.startsWith('$mqprobe/') || !levelsMatch(levels, packet.topic.split('/'))) return;
          try {
            handler(packet.topic, packet.payload as Buffer, {
              clientId: client?.id,
              username: client ? host.broker.usernameOf(client) : undefined,
            });
          } catch (err) {
            void this.failed(a, err);
          }
        });
        a.unsubscribes.add(unsubscribe);
        return async () => {
          a.unsubscribes.delete(unsubscribe);
          unsubscribe();
        };
      },
      records: (beat, handler) => {
        if (!a.live || a.ending) throw dead();
        if (!bus) throw new Error(`beat ${name} follows beat ${beat}: the frame has no record bus`);
        const unfollow = bus.follow(beat, (record) => {
          try {
            handler(record);
          } catch (err) {
            void this.failed(a, err);
          }
        });
        a.unsubscribes.add(unfollow);
        return () => {
          a.unsubscribes.delete(unfollow);
          unfollow();
        };
      },
      http: async (register) => {
        if (!a.live || a.ending) throw dead();
        if (!http) throw new Error(`beat ${name} serves HTTP routes: configure http_listener`);
        if (a.unmountHttp) throw new Error(`beat ${name} registered its HTTP routes twice`);
        a.unmountHttp = await http.mount(name, common.topicPrefix, this.log, register);
      },
      fail: (err) => void this.failed(a, err),
    };
  }
}

const DONE = Promise.resolve();

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
