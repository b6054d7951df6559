import { randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Counter } from 'prom-client';
import type { Bridge, BridgeContext } from '../contract.js';
import { counter } from '../../broker/metrics.js';
import type { FiwareConfig, FiwareSubscribe } from './config.js';
import { OrionClient } from './orion.js';
import { NotificationError, parseNotification } from './notification.js';
import { readSecretFile } from '../shared/secret-file.js';
import { parseJsonBodiesBounded } from '../../broker/http/bounded-json-bodies.js';

/** Store key: the subscriptions of the running beat, so that a beat that could not delete them (a crash) does on its next start. */
const SUBS_KEY = 'subscriptions';
/** How many NGSI-LD notification ids are remembered to drop a notification delivered twice. */
const RECENT_IDS = 1000;

interface Live {
  key: string;
  sub: FiwareSubscribe;
  id: string;
}

interface Metrics {
  notifications: Counter<'beat' | 'outcome'>;
  entities: Counter<'beat'>;
  subscriptions: Counter<'beat' | 'action'>;
}

/** One topic level from an NGSI name: `/` and MQTT wildcards become `_`. */
const level = (s: string | undefined) => (s === undefined || s === '' ? '_' : s.replace(/[/+#]|\0/g, '_'));

/**
 * The FIWARE beat: creates one subscription per `fiware_subscribe` in Orion (NGSI v2) or an NGSI-LD
 * broker, pointed at `POST /beats/fiware/notify?s=<key>` on mqprobe's HTTP listener, and turns each
 * notified entity into a record on `beats/fiware/<service>/<type>/<id>`. Only notifications for its own
 * subscriptions and tenant are taken (the `s` key and the subscription id must agree). It checks every
 * `fiware_check_interval` that the broker still has them and re-creates forgotten ones; it deletes
 * them when it stops, and at start deletes any a crashed predecessor left behind.
 */
export class FiwareBridge implements Bridge {
  private ctx?: BridgeContext;
  private metrics?: Metrics;
  private readonly orion: OrionClient;
  private readonly live = new Map<string, Live>();
  private readonly recent = new Set<string>();
  private timer?: NodeJS.Timeout;
  private checking?: Promise<void>;
  private stopping = false;

  constructor(private readonly cfg: FiwareConfig) {
    this.orion = new OrionClient(cfg);
  }

  async start(ctx: BridgeContext): Promise<void> {
    this.ctx = ctx;
    if (this.cfg.notifyTokenFile) this.orion.notifyToken = await readSecretFile(this.cfg.notifyTokenFile, 'fiware_notify_token_file');
    this.metrics = {
      notifications: counter(
        ctx.metrics,
        'mqprobe_beat_fiware_notifications_total',
        'Notifications received, by outcome: accepted, duplicate, foreign (not a subscription of this beat), wrong_tenant, malformed.',
        ['beat', 'outcome'],
      ),
      entities: counter(ctx.metrics, 'mqprobe_beat_fiware_entities_total', 'Entities published from accepted notifications.', ['beat']),
      subscriptions: counter(
        ctx.metrics,
        'mqprobe_beat_fiware_subscriptions_total',
        'Subscription calls to the context broker: created, recreated, deleted, failed.',
        ['beat', 'action'],
      ),
    };
    await this.removeLeftovers();
    // the route is there before the first subscription exists: Orion may notify at once
    await ctx.http((app) => {
      parseJsonBodiesBounded(app, ['application/ld+json', 'application/geo+json'], 'ignore');
      app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
        this.count('malformed');
        const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 400;
        void reply.code(status).send({ error: 'BadRequest', description: err.message.slice(0, 200) });
      });
      app.post('/notify', (req, reply) => this.notified(req, reply));
    });
    try {
      for (const sub of this.cfg.subscribe) await this.subscribe(randomBytes(12).toString('base64url'), sub, 'created');
    } catch (err) {
      await this.unsubscribeAll();
      throw err;
    }
    this.timer = setInterval(() => {
      this.checking ??= this.check().finally(() => (this.checking = undefined));
    }, this.cfg.checkIntervalMs);
    ctx.log.info(
      `subscribed in the context broker at ${this.cfg.url!.origin} (NGSI ${this.cfg.api === 'v2' ? 'v2' : '-LD'}): ${[...this.live.values()].map((l) => `${l.sub.type} ${l.id}`).join(', ')}`,
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await this.checking;
    await this.unsubscribeAll();
  }

  private count(outcome: string): void {
    this.metrics!.notifications.inc({ beat: this.ctx!.name, outcome });
  }

  private async saveLive(): Promise<void> {
    const ids = [...this.live.values()].map((l) => l.id);
    if (ids.length === 0) await this.ctx!.store.delete(SUBS_KEY);
    else await this.ctx!.store.set(SUBS_KEY, JSON.stringify(ids));
  }

  private async subscribe(key: string, sub: FiwareSubscribe, action: 'created' | 'recreated'): Promise<void> {
    const url = new URL(this.cfg.notifyUrl!);
    url.searchParams.set('s', key);
    try {
      const id = await this.orion.create(sub, url.toString());
      this.live.set(key, { key, sub, id });
      await this.saveLive();
      this.metrics!.subscriptions.inc({ beat: this.ctx!.name, action });
    } catch (err) {
      this.metrics!.subscriptions.inc({ beat: this.ctx!.name, action: 'failed' });
      throw err;
    }
  }

  private async removeLeftovers(): Promise<void> {
    const text = await this.ctx!.store.get(SUBS_KEY);
    if (text === undefined) return;
    let ids: unknown;
    try {
      ids = JSON.parse(text);
    } catch {
      ids = [];
    }
    for (const id of Array.isArray(ids) ? ids : []) {
      if (typeof id !== 'string') continue;
      await this.orion.remove(id).then(
        () => this.ctx!.log.info(`deleted subscription ${id} left by an earlier run`),
        (err: Error) => this.ctx!.log.warn(`could not delete subscription ${id} left by an earlier run: ${err.message}`),
      );
    }
    await this.ctx!.store.delete(SUBS_KEY);
  }

  private async unsubscribeAll(): Promise<void> {
    for (const l of [...this.live.values()]) {
      try {
        await this.orion.remove(l.id);
        this.live.delete(l.key);
        this.metrics!.subscriptions.inc({ beat: this.ctx!.name, action: 'deleted' });
      } catch (err) {
        // left in the store: the next start deletes it
        this.ctx!.log.warn(`could not delete subscription ${l.id}: ${(err as Error).message}`);
      }
    }
    await this.saveLive();
  }

  /** Re-creates the subscriptions the context broker no longer has (it restarted without persistence, someone deleted them). */
  private async check(): Promise<void> {
    for (const l of [...this.live.values()]) {
      if (this.stopping) return;
      try {
        if (await this.orion.exists(l.id)) continue;
        this.ctx!.log.warn(`the context broker forgot subscription ${l.id} (${l.sub.type}); re-creating it`);
        this.live.delete(l.key);
        await this.subscribe(l.key, l.sub, 'recreated');
      } catch (err) {
        this.ctx!.log.warn(`checking subscription ${l.id}: ${(err as Error).message}`);
      }
    }
  }

  /** The tenant a notification names, read by header name; undefined when it matches the beat's, else why not. */
  private wrongTenant(headers: FastifyRequest['headers']): string | undefined {
    const one = (name: string) => {
      const v = headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const service = (this.cfg.api === 'ld' ? (one('ngsild-tenant') ?? one('fiware-service')) : one('fiware-service')) ?? '';
    const want = this.cfg.service ?? '';
    if (service.toLowerCase() !== want) return `tenant "${service.slice(0, 64)}" is not ${want ? `"${want}"` : 'the default tenant'}`;
    if (this.cfg.api !== 'v2' || !this.cfg.servicePath) return undefined;
    const path = one('fiware-servicepath') ?? '/';
    const configured = this.cfg.servicePath;
    const ok = configured.endsWith('/#')
      ? path === configured.slice(0, -2) || path.startsWith(configured.slice(0, -1)) || configured === '/#'
      : path === configured;
    return ok ? undefined : `service path "${path.slice(0, 128)}" is not ${configured}`;
  }

  private async notified(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const ctx = this.ctx!;
    const key = (req.query as Record<string, unknown> | undefined)?.s;
    const live = typeof key === 'string' ? this.live.get(key) : undefined;
    const refuse = (status: number, outcome: string, why: string) => {
      this.count(outcome);
      ctx.log.warn(`notification refused: ${why}`);
      return reply.code(status).send({ error: status === 403 ? 'Forbidden' : 'BadRequest', description: why });
    };
    if (!live) return refuse(403, 'foreign', 'not addressed to a subscription of this beat');
    const tenant = this.wrongTenant(req.headers);
    if (tenant) return refuse(400, 'wrong_tenant', tenant);
    let n;
    try {
      n = parseNotification(req.body);
    } catch (err) {
      if (!(err instanceof NotificationError)) throw err;
      return refuse(400, 'malformed', `not an NGSI notification: ${err.message}`);
    }
    if (n.subscriptionId !== undefined && n.subscriptionId !== live.id)
      return refuse(403, 'foreign', `subscription ${n.subscriptionId.slice(0, 100)} is not one of this beat`);
    if (n.id !== undefined) {
      if (this.recent.has(n.id)) {
        this.count('duplicate');
        return reply.code(200).send();
      }
      this.recent.add(n.id);
      if (this.recent.size > RECENT_IDS) this.recent.delete(this.recent.values().next().value!);
    }
    const service = this.cfg.service ?? 'default';
    const servicePath = this.cfg.api === 'v2' ? String(req.headers['fiware-servicepath'] ?? '/') : undefined;
    const attrsFormat = req.headers['ngsiv2-attrsformat'];
    for (const e of n.entities) {
      const type = e.type ?? live.sub.type;
      await ctx.emit({
        subtopic: `${level(service)}/${level(type)}/${level(e.id)}`,
        data: {
          service,
          servicePath,
          subscriptionId: live.id,
          notifiedAt: n.notifiedAt,
          attrsFormat: typeof attrsFormat === 'string' ? attrsFormat : undefined,
          type,
          id: e.id,
          entity: e.entity,
        },
        ngsi: () => e.entity as Record<string, unknown>,
      });
      this.metrics!.entities.inc({ beat: ctx.name });
    }
    this.count('accepted');
    return reply.code(200).send();
  }
}
