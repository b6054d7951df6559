import type { FiwareConfig, FiwareSubscribe } from './config.js';
import { NGSI_LD_CORE_CONTEXT } from '../shared/ngsi.js';

const REQUEST_TIMEOUT_MS = 10_000;

/**
 * The subscription calls of the context broker's API: NGSI v2 (Orion, `orion-api.md`
 * "Subscriptions") or NGSI-LD (ETSI GS CIM 009, Orion-LD): create (201 + `Location`), read (200 or
 * 404) and delete (204). Errors say what the broker answered, never more than a short body excerpt.
 */
export class OrionClient {
  /** Sent by the context broker with each notification (`fiware_notify_token_file`), read at each start. */
  notifyToken?: string;

  constructor(private readonly cfg: FiwareConfig) {}

  private get base(): string {
    const u = this.cfg.url!.toString().replace(/\/+$/, '');
    return this.cfg.api === 'v2' ? `${u}/v2/subscriptions` : `${u}/ngsi-ld/v1/subscriptions`;
  }

  /** The tenant headers the API names. */
  private headers(): Record<string, string> {
    const h: Record<string, string> = {};
    if (this.cfg.api === 'v2') {
      if (this.cfg.service) h['fiware-service'] = this.cfg.service;
      if (this.cfg.servicePath) h['fiware-servicepath'] = this.cfg.servicePath;
    } else if (this.cfg.service) h['ngsild-tenant'] = this.cfg.service;
    return h;
  }

  /** The subscription body for one `fiware_subscribe`, notifying `notifyUrl`. */
  body(sub: FiwareSubscribe, notifyUrl: string): Record<string, unknown> {
    const description = `mqprobe beat fiware: ${sub.type}`;
    if (this.cfg.api === 'v2') {
      const condition = sub.attrs.length > 0 ? { attrs: sub.attrs } : {};
      const auth = this.notifyToken === undefined ? undefined : { Authorization: `Bearer ${this.notifyToken}` };
      const target = auth ? { httpCustom: { url: notifyUrl, headers: auth } } : { http: { url: notifyUrl } };
      const notification: Record<string, unknown> = { ...target, attrsFormat: 'normalized' };
      if (sub.attrs.length > 0) notification.attrs = sub.attrs;
      return { description, subject: { entities: [{ idPattern: '.*', type: sub.type }], condition }, notification };
    }
    const body: Record<string, unknown> = { type: 'Subscription', description, entities: [{ type: sub.type }] };
    if (sub.attrs.length > 0) body.watchedAttributes = sub.attrs;
    const endpoint: Record<string, unknown> = { uri: notifyUrl, accept: 'application/json' };
    if (this.notifyToken !== undefined) endpoint.receiverInfo = [{ key: 'Authorization', value: `Bearer ${this.notifyToken}` }];
    const notification: Record<string, unknown> = { format: 'normalized', endpoint };
    if (sub.attrs.length > 0) notification.attributes = sub.attrs;
    body.notification = notification;
    body['@context'] = NGSI_LD_CORE_CONTEXT;
    return body;
  }

  /** Creates a subscription; resolves with its id (the last segment of `Location`). */
  async create(sub: FiwareSubscribe, notifyUrl: string): Promise<string> {
    const contentType = this.cfg.api === 'v2' ? 'application/json' : 'application/ld+json';
    const res = await this.call(
      'POST',
      this.base,
      { ...this.headers(), 'content-type': contentType },
      JSON.stringify(this.body(sub, notifyUrl)),
    );
    if (res.status !== 201) throw new Error(`creating the ${sub.type} subscription: ${await this.answer(res)}`);
    const location = res.headers.get('location') ?? '';
    const id = decodeURIComponent(location.split('/').pop() ?? '');
    if (!id) throw new Error(`creating the ${sub.type} subscription: the context broker answered 201 without a Location header`);
    return id;
  }

  /** Whether the broker still has the subscription. */
  async exists(id: string): Promise<boolean> {
    const res = await this.call('GET', `${this.base}/${encodeURIComponent(id)}`, { ...this.headers(), accept: 'application/json' });
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw new Error(`reading subscription ${id}: ${await this.answer(res)}`);
  }

  /** Deletes a subscription; one the broker no longer has counts as deleted. */
  async remove(id: string): Promise<void> {
    const res = await this.call('DELETE', `${this.base}/${encodeURIComponent(id)}`, this.headers());
    if (res.status !== 204 && res.status !== 200 && res.status !== 404)
      throw new Error(`deleting subscription ${id}: ${await this.answer(res)}`);
  }

  private async call(method: string, url: string, headers: Record<string, string>, body?: string): Promise<Response> {
    try {
      return await fetch(url, { method, headers, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    } catch (err) {
      const cause = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
      throw new Error(`cannot reach the context broker at ${this.cfg.url!.origin}: ${cause}`);
    }
  }

  private async answer(res: Response): Promise<string> {
    const text = (await res.text().catch(() => '')).slice(0, 200).replace(/\s+/g, ' ');
    return `the context broker at ${this.cfg.url!.origin} answered HTTP ${res.status}${text ? ` (${text})` : ''}`;
  }
}
