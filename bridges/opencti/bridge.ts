import http from 'node:http';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import type { Counter, Gauge } from 'prom-client';
import type { Bridge, BridgeContext } from '../contract.js';
import { counter, gauge } from '../../broker/metrics.js';
import { readSecretFile } from '../shared/secret-file.js';
import type { OpenCtiConfig } from './config.js';
import { SseParser, type SseMessage } from './sse-parser.js';
import { IndicatorSet, TRACKED_TYPES, derive, trackedOf, type Tracked } from './indicators.js';
import { applyPatch } from './patch.js';
import { stixToNgsi } from './stix-ngsi.js';
import { parseBoundedJson } from '../../broker/bounded-json.js';

/** Event types that change OpenCTI's knowledge; `heartbeat` and `connected` only keep the stream alive. */
const ACTIONS = new Set(['create', 'update', 'delete', 'merge']);
const KEEPALIVE = new Set(['heartbeat', 'connected']);
/** Reconnect delays double from the first to the last; an event received resets them. */
export const RECONNECT_MS = { first: 250, max: 30_000 };
/** OpenCTI sends a heartbeat every few seconds: this long without a byte means the connection is dead. */
const IDLE_TIMEOUT_MS = 60_000;
const LAST_ID_KEY = 'last_event_id';
const OBJECT_KEY = 'obj/';

type Item = { msg: SseMessage } | { oversized: number; id?: string };

class AuthError extends Error {}

interface Metrics {
  events: Counter<'beat' | 'outcome'>;
  objects: Counter<'beat' | 'outcome'>;
  reconnects: Counter<'beat'>;
  indicators: Gauge<'beat'>;
}

/** `<ms>-<seq>` Redis stream ids as OpenCTI sends them; true when a comes after b (other ids: when they differ). */
export function isAfter(a: string, b: string): boolean {
  const ma = /^(\d+)-(\d+)$/.exec(a);
  const mb = /^(\d+)-(\d+)$/.exec(b);
  if (!ma || !mb) return a !== b;
  const [ta, tb] = [BigInt(ma[1]), BigInt(mb[1])];
  return ta !== tb ? ta > tb : BigInt(ma[2]) > BigInt(mb[2]);
}

/** Whether an update carries the whole new object (OpenCTI 5.x/6.x) rather than only the changed fields. */
function isWhole(stix: Record<string, unknown>): boolean {
  return stix.type === 'indicator' ? 'pattern' in stix : 'value' in stix || 'hashes' in stix;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The OpenCTI beat: follows an OpenCTI live stream (Server-Sent Events with a bearer token), publishes
 * every create/update/delete/merge on `beats/opencti/<event>/<STIX type>`, and keeps the indicator
 * set the detectors match traffic against (offered to them through ctx.intel, and
 * `GET /beats/opencti/indicators`). Each event is handled to the end (published, the set updated,
 * then its id stored) before the next; after a dropped connection or a restart the stream resumes
 * after the stored id (`Last-Event-ID`), and ids at or before it are skipped, so nothing is published
 * twice or skipped.
 */
export class OpenCtiBridge implements Bridge {
  private ctx?: BridgeContext;
  private metrics?: Metrics;
  private readonly set = new IndicatorSet();
  private readonly tracked = new Map<string, Tracked>();
  private lastId?: string;
  private token = '';
  private ca?: Buffer;
  private req?: http.ClientRequest;
  private consuming: Promise<void> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  private delay = RECONNECT_MS.first;
  /** The stream's `retry:` field: the server's wish for the least reconnect delay. */
  private serverRetryMs = 0;
  private stopping = false;

  constructor(private readonly cfg: OpenCtiConfig) {}

  /** The live indicator set (also offered to the detectors through ctx.intel). */
  get indicators(): IndicatorSet {
    return this.set;
  }

  async start(ctx: BridgeContext): Promise<void> {
    this.ctx = ctx;
    const labels = { beat: ctx.name };
    this.metrics = {
      events: counter(
        ctx.metrics,
        'mqprobe_beat_opencti_events_total',
        'OpenCTI stream events by outcome: create, update, delete, merge, keepalive, duplicate (at or before the last id), unknown (event type), malformed (data not JSON), invalid (no STIX object), oversized.',
        ['beat', 'outcome'],
      ),
      objects: counter(
        ctx.metrics,
        'mqprobe_beat_opencti_objects_total',
        'Indicators and observables seen by what the indicator set made of them: indicator, none (revoked, no value), unsupported (pattern), invalid.',
        ['beat', 'outcome'],
      ),
      reconnects: counter(ctx.metrics, 'mqprobe_beat_opencti_reconnects_total', 'Reconnections to the OpenCTI stream.', ['beat']),
      indicators: gauge(ctx.metrics, 'mqprobe_beat_opencti_indicators', 'Indicators in the live indicator set.', ['beat']),
    };
    this.token = await readSecretFile(this.cfg.tokenFile!, 'opencti_token_file');
    if (this.cfg.cafile) this.ca = await readFile(this.cfg.cafile);
    await this.load();
    this.metrics.indicators.set(labels, this.set.size);
    ctx.intel.offer(this.set);
    await this.api(ctx);
    const res = await this.open();
    this.consuming = this.consume(res);
    ctx.log.info(
      `following the OpenCTI stream at ${this.where()}${this.lastId ? ` after event ${this.lastId}` : ' from its start'} (${this.set.size} indicators)`,
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    this.req?.destroy();
    await this.consuming;
    this.ctx?.intel.withdraw(this.set);
  }

  private where(): string {
    const u = this.cfg.url!;
    return `${u.protocol}//${u.host}${u.pathname}`;
  }

  /** The stored objects and the last event id. */
  private async load(): Promise<void> {
    const store = this.ctx!.store;
    this.lastId = await store.get(LAST_ID_KEY);
    for (const key of await store.keys(OBJECT_KEY)) {
      const text = await store.get(key);
      if (text === undefined) continue;
      try {
        this.keep(JSON.parse(text) as Tracked);
      } catch {
        this.ctx!.log.warn(`stored object ${key.slice(0, 200)} is unreadable; dropped`);
        await store.delete(key);
      }
    }
  }

  /** `GET /beats/opencti/indicators` (the set) and `GET /beats/opencti/indicators/match?ip=|domain=|url=|hash=`. */
  private async api(ctx: BridgeContext): Promise<void> {
    try {
      await ctx.http((app) => {
        app.get('/indicators', async () => ({ count: this.set.size, indicators: this.set.list() }));
        app.get<{ Querystring: Record<string, string | undefined> }>('/indicators/match', async (req) => {
          const q = req.query;
          const matches = q.ip
            ? this.set.matchIp(q.ip)
            : q.domain
              ? this.set.matchDomain(q.domain)
              : q.url
                ? this.set.matchUrl(q.url)
                : q.hash
                  ? this.set.matchHash(q.hash)
                  : undefined;
          return { matches: matches ?? [] };
        });
      });
    } catch (err) {
      ctx.log.info(`indicator set available in-process only (${(err as Error).message})`);
    }
  }

  /** One GET of the stream, resuming after the last id; resolves with a 200 event stream or rejects saying why not. */
  private open(): Promise<http.IncomingMessage> {
    const url = this.cfg.url!;
    const headers: Record<string, string> = {
      accept: 'text/event-stream',
      'cache-control': 'no-cache',
      authorization: `Bearer ${this.token}`,
    };
    if (this.lastId !== undefined) headers['last-event-id'] = this.lastId;
    const get = url.protocol === 'https:' ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = get(url, { method: 'GET', headers, ca: this.ca, agent: false }, (res) => {
        const status = res.statusCode ?? 0;
        const type = String(res.headers['content-type'] ?? '');
        if (status === 401 || status === 403) {
          res.resume();
          return reject(new AuthError(`OpenCTI at ${this.where()} refused the token (HTTP ${status}): check opencti_token_file`));
        }
        if (status !== 200 || !type.startsWith('text/event-stream')) {
          res.resume();
          return reject(
            new Error(
              `OpenCTI at ${this.where()} answered HTTP ${status} ${type ? `(${type.slice(0, 100)})` : ''} instead of an event stream`,
            ),
          );
        }
        resolve(res);
      });
      this.req = req;
      req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`no data from OpenCTI for ${IDLE_TIMEOUT_MS / 1000} s`)));
      req.on('error', (err) => reject(new Error(`cannot reach OpenCTI at ${this.where()}: ${err.message}`)));
      req.end();
    });
  }

  /** Reads one connection to its end, handling each event in turn, then reconnects unless stopping. */
  private async consume(res: http.IncomingMessage): Promise<void> {
    const queue: Item[] = [];
    const parser = new SseParser(this.cfg.maxEventBytes, {
      onEvent: (msg) => queue.push({ msg }),
      onOversized: (bytes, id) => queue.push({ oversized: bytes, id }),
      onRetry: (ms) => (this.serverRetryMs = Math.min(ms, RECONNECT_MS.max)),
    });
    res.setEncoding('utf8');
    let reason = 'OpenCTI ended the stream';
    try {
      for await (const chunk of res) {
        parser.push(chunk as string);
        while (queue.length > 0) await this.handle(queue.shift()!);
      }
    } catch (err) {
      reason = (err as Error).message;
    }
    if (this.stopping) return;
    this.reconnect(reason);
  }

  private reconnect(reason: string): void {
    const ctx = this.ctx!;
    const delay = Math.max(this.delay, this.serverRetryMs);
    this.delay = Math.min(RECONNECT_MS.max, this.delay * 2);
    ctx.log.warn(`OpenCTI stream lost (${reason}); reconnecting in ${delay} ms${this.lastId ? ` after event ${this.lastId}` : ''}`);
    this.timer = setTimeout(() => {
      if (this.stopping) return;
      this.metrics!.reconnects.inc({ beat: ctx.name });
      this.open().then(
        (res) => {
          if (this.stopping) return void res.destroy();
          this.consuming = this.consume(res);
        },
        (err: Error) => {
          if (this.stopping) return;
          // a refused token needs the file re-read: the frame restarts the beat (and reads it) with its own backoff
          if (err instanceof AuthError) ctx.fail(err);
          else this.reconnect(err.message);
        },
      );
    }, delay);
  }

  private count(outcome: string): void {
    this.metrics!.events.inc({ beat: this.ctx!.name, outcome });
  }

  private async handle(item: Item): Promise<void> {
    const ctx = this.ctx!;
    if ('oversized' in item) {
      this.count('oversized');
      ctx.log.warn(`OpenCTI event ${item.id ?? '(no id)'} of more than ${this.cfg.maxEventBytes} bytes skipped (opencti_max_event_bytes)`);
      if (item.id !== undefined && (this.lastId === undefined || isAfter(item.id, this.lastId))) await this.advance(item.id);
      return;
    }
    const { id, event, data } = item.msg;
    if (KEEPALIVE.has(event)) return this.count('keepalive');
    if (id !== undefined && this.lastId !== undefined && !isAfter(id, this.lastId)) return this.count('duplicate');
    this.delay = RECONNECT_MS.first;
    if (!ACTIONS.has(event)) {
      this.count('unknown');
      ctx.log.warn(`OpenCTI event ${id ?? '(no id)'} of unknown type "${event.slice(0, 64)}" skipped`);
      return this.advance(id);
    }
    let payload: unknown;
    try {
      payload = parseBoundedJson(data);
    } catch (err) {
      this.count('malformed');
      ctx.log.warn(`OpenCTI event ${id ?? '(no id)'} skipped: its data is not JSON (${(err as Error).message.slice(0, 200)})`);
      return this.advance(id);
    }
    const stix = isObject(payload) ? payload.data : undefined;
    if (
      !isObject(payload) ||
      !isObject(stix) ||
      typeof stix.id !== 'string' ||
      typeof stix.type !== 'string' ||
      !/^[a-z0-9-]{1,100}$/.test(stix.type)
    ) {
      this.count('invalid');
      ctx.log.warn(`OpenCTI event ${id ?? '(no id)'} skipped: its data holds no STIX object with an id and a type`);
      return this.advance(id);
    }
    await ctx.emit({
      subtopic: `${event}/${stix.type}`,
      data: { id, event, data: payload },
      ngsi: (format) => stixToNgsi(format, event, stix, eventTime(id)),
      time: eventTime(id),
    });
    await this.applyToSet(event, stix, payload);
    this.count(event);
    await this.advance(id);
  }

  private async advance(id: string | undefined): Promise<void> {
    if (id === undefined) return;
    this.lastId = id;
    await this.ctx!.store.set(LAST_ID_KEY, id);
  }

  private async applyToSet(event: string, stix: Record<string, unknown>, payload: Record<string, unknown>): Promise<void> {
    const id = stix.id as string;
    if (event === 'delete') return this.forget(id);
    if (event === 'merge') {
      const context = isObject(payload.context) ? payload.context : isObject(stix.x_opencti_context) ? stix.x_opencti_context : {};
      const sources = Array.isArray(context.sources) ? context.sources : [];
      for (const s of sources) {
        const sid = typeof s === 'string' ? s : isObject(s) && typeof s.id === 'string' ? s.id : undefined;
        if (sid !== undefined && sid !== id) await this.forget(sid);
      }
    }
    if (!TRACKED_TYPES.has(stix.type as string)) return;
    const old = this.tracked.get(id);
    const context = isObject(payload.context) ? payload.context : {};
    const next = event === 'update' && old && !isWhole(stix) ? applyPatch(old, context.patch, stix.x_opencti_patch) : trackedOf(stix);
    await this.ctx!.store.set(OBJECT_KEY + id, JSON.stringify(next));
    this.keep(next);
  }

  /** Puts an object into memory and the set (or out of the set when it no longer stands for a live indicator). */
  private keep(t: Tracked): void {
    const ctx = this.ctx!;
    this.tracked.set(t.id, t);
    const d = derive(t);
    if ('entry' in d) this.set.set(d.entry);
    else {
      this.set.remove(t.id);
      const why = 'none' in d ? d.none : 'unsupported' in d ? d.unsupported : d.invalid;
      ctx.log.debug(`${t.id} is not in the indicator set: ${why}`);
    }
    const outcome = 'entry' in d ? 'indicator' : 'none' in d ? 'none' : 'unsupported' in d ? 'unsupported' : 'invalid';
    this.metrics!.objects.inc({ beat: ctx.name, outcome });
    this.metrics!.indicators.set({ beat: ctx.name }, this.set.size);
  }

  private async forget(id: string): Promise<void> {
    if (!this.tracked.delete(id)) return;
    this.set.remove(id);
    await this.ctx!.store.delete(OBJECT_KEY + id);
    this.metrics!.indicators.set({ beat: this.ctx!.name }, this.set.size);
  }
}

/** The time in an OpenCTI event id (`<epoch ms>-<seq>`), for NGSI observedAt. */
function eventTime(id: string | undefined): number | undefined {
  const m = id === undefined ? null : /^(\d{1,15})-\d+$/.exec(id);
  return m ? Number(m[1]) : undefined;
}
