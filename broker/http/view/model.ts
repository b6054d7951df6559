import type { Registry } from 'prom-client';
import type { BrokerApi } from '../../engine/api.js';
import { isClosed, type ClientHandle } from '../../engine/client.js';
import { ClientTable } from './clients.js';
import { Ring } from './ring.js';
import { TopicStats } from './topics.js';
import type { AlertView, ClientEvent, HealthSample } from './api-types.js';
import { parseBoundedJson } from '../../bounded-json.js';
import type { StatusRegistry } from '../../status.js';
import { PartTable } from './components.js';

/** Where detection publishes its alerts (detect/index.ts ALERT_TOPIC_PREFIX; broker/ may not import detect/). */
const ALERT_PREFIX = '$SYS/broker/alerts/';
/** Seconds between ticks: rates, sparklines and the live stream's updates. */
export const TICK_S = 2;
/** Seconds between the health history's samples; 360 of them cover the last hour. */
const HISTORY_S = 10;
const HISTORY_SAMPLES = 360;
const MAX_TEXT = 512;

export interface ViewLimits {
  topics: number;
  events: number;
  alerts: number;
  sysTopics: number;
}

export const DEFAULT_VIEW_LIMITS: ViewLimits = { topics: 10_000, events: 20_000, alerts: 500, sysTopics: 500 };

/**
 * What the web view shows, kept from the broker's own events (no capture subscription: the view
 * costs nothing on the capture path, and the same whether capture is on or off). Every collection is
 * bounded (ViewLimits); the work per message is a Map lookup and a counter.
 */
export class ViewModel {
  readonly clients: ClientTable;
  readonly topics: TopicStats;
  /** Connects, refusals, subscriptions, denials and disconnects of every client, newest kept. */
  readonly events: Ring<ClientEvent>;
  readonly alerts: Ring<AlertView>;
  readonly history = new Ring<HealthSample>(HISTORY_SAMPLES);
  readonly sys = new Map<string, string>();
  /** Beats and bridges, as of the last tick. */
  readonly parts: PartTable;
  private readonly stops: (() => void)[] = [];
  private timers: NodeJS.Timeout[] = [];
  private lastSample = { t: Date.now(), in: 0, out: 0 };
  published = 0;
  delivered = 0;
  /** The live figures of the last tick. */
  live: HealthSample = { t: Date.now(), in_per_s: 0, out_per_s: 0, clients: 0 };
  private lastTick = { in: 0, out: 0 };
  private readonly tickListeners = new Set<() => void>();

  constructor(
    private readonly broker: BrokerApi,
    readonly registry: Registry,
    status: StatusRegistry,
    private readonly limits: ViewLimits = DEFAULT_VIEW_LIMITS,
  ) {
    this.parts = new PartTable(status);
    this.clients = new ClientTable(broker, this.stops);
    this.topics = new TopicStats(limits.topics);
    this.events = new Ring(limits.events);
    this.alerts = new Ring(limits.alerts);
    const ev = (c: ClientHandle, action: string, detail = '') => {
      if (!c.id.startsWith('$')) this.events.push({ time: new Date().toISOString(), client_id: c.id, action, detail: cut(detail) });
    };
    this.stops.push(
      broker.on('publish', (p, c) => {
        if (c === null) return; // the broker's own ($SYS, alerts)
        this.published++;
        this.topics.count(p.topic, p.retain, p.payload.length);
      }),
      broker.on('delivered', () => void this.delivered++),
      broker.on('client-ready', (c) => ev(c, 'client-connected', userOf(broker, c))),
      broker.on('connection-refused', (c, code, reason, user) =>
        ev(
          c,
          'connection-refused',
          `${reason} (${code === undefined ? 'closed before CONNACK' : `return code ${code}`})${user === undefined ? '' : `, user ${user}`}`,
        ),
      ),
      broker.on('subscribe', (subs, c) =>
        ev(c, 'subscription-granted', subs.map((s) => (s.qos >= 128 ? `${s.topic} (refused)` : `${s.topic} qos ${s.qos}`)).join(', ')),
      ),
      broker.on('subscription-denied', (c, s) => ev(c, 'subscription-denied', s.topic)),
      // the engine unsubscribes a closing client itself: that is its disconnect, not an UNSUBSCRIBE
      broker.on('unsubscribe', (topics, c) => isClosed(c) || ev(c, 'unsubscribed', topics.join(', '))),
      broker.on('publish-denied', (c, p) => ev(c, 'publish-denied', p.topic)),
      broker.on('disconnect-reason', (c, reason) => ev(c, 'client-disconnected', reason)),
      broker.subscribe('$SYS/#', (packet, done) => {
        this.onSys(packet.topic, packet.payload);
        done();
      }),
    );
  }

  start(): void {
    this.parts.tick(TICK_S);
    this.timers.push(setInterval(() => this.tick(), TICK_S * 1000).unref(), setInterval(() => this.sample(), HISTORY_S * 1000).unref());
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const s of this.stops.splice(0)) s();
    this.tickListeners.clear();
  }

  /** Called after every tick (the live stream sends its update then); returns the unsubscribe. */
  onTick(fn: () => void): () => void {
    this.tickListeners.add(fn);
    return () => this.tickListeners.delete(fn);
  }

  private tick(): void {
    this.topics.tick(TICK_S);
    this.clients.tick(TICK_S);
    this.parts.tick(TICK_S);
    this.live = {
      t: Date.now(),
      in_per_s: (this.published - this.lastTick.in) / TICK_S,
      out_per_s: (this.delivered - this.lastTick.out) / TICK_S,
      clients: this.clients.size,
    };
    this.lastTick = { in: this.published, out: this.delivered };
    for (const fn of this.tickListeners) fn();
  }

  private sample(): void {
    const now = Date.now();
    const s = (now - this.lastSample.t) / 1000;
    this.history.push({
      t: now,
      in_per_s: (this.published - this.lastSample.in) / s,
      out_per_s: (this.delivered - this.lastSample.out) / s,
      clients: this.clients.size,
    });
    this.lastSample = { t: now, in: this.published, out: this.delivered };
  }

  private onSys(topic: string, payload: Buffer | string): void {
    if (topic.startsWith(ALERT_PREFIX)) {
      this.onAlert(topic.slice(ALERT_PREFIX.length), payload);
      return;
    }
    if (!topic.startsWith('$SYS/broker/')) return;
    if (!this.sys.has(topic) && this.sys.size >= this.limits.sysTopics) return;
    this.sys.set(topic, cut(payload.toString()));
  }

  private onAlert(rule: string, payload: Buffer | string): void {
    let a: AlertJson;
    try {
      a = parseBoundedJson(payload) as AlertJson;
    } catch {
      a = { message: payload.toString() };
    }
    const detect = a.mqprobe?.detect;
    this.alerts.push({
      time: typeof a['@timestamp'] === 'string' ? a['@timestamp'] : new Date().toISOString(),
      rule: cut(typeof a.rule?.name === 'string' ? a.rule.name : rule),
      entity: cut(typeof detect?.entity === 'string' ? detect.entity : ''),
      message: cut(typeof a.message === 'string' ? a.message : ''),
      severity: typeof a.event?.severity === 'number' ? a.event.severity : null,
      client_id: typeof a.mqtt?.client_id === 'string' ? cut(a.mqtt.client_id) : null,
      evidence: JSON.stringify(detect?.evidence ?? {}).slice(0, 2000),
    });
    const about = a.mqtt?.client_id;
    if (typeof about === 'string')
      this.events.push({ time: new Date().toISOString(), client_id: about, action: 'alert', detail: cut(`${rule}: ${a.message ?? ''}`) });
  }
}

interface AlertJson {
  '@timestamp'?: unknown;
  message?: unknown;
  event?: { severity?: unknown };
  rule?: { name?: unknown };
  mqtt?: { client_id?: unknown };
  mqprobe?: { detect?: { entity?: unknown; evidence?: unknown } };
}

function userOf(broker: BrokerApi, c: ClientHandle): string {
  const u = broker.usernameOf(c);
  return u === undefined ? 'anonymous' : `user ${u}`;
}

function cut(s: string): string {
  return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s;
}
