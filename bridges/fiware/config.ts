import { ConfigError } from '../../broker/config/errors.js';
import type { KeySpec } from '../../broker/config/spec.js';
import type { BeatBlock } from '../../broker/config/types.js';
import { urlValue } from '../shared/url-value.js';

export type FiwareApi = 'v2' | 'ld';

/** One `fiware_subscribe <entity type> [attr,attr,…]`. */
export interface FiwareSubscribe {
  type: string;
  attrs: string[];
}

export interface FiwareConfig {
  url?: URL;
  api: FiwareApi;
  service?: string;
  servicePath?: string;
  notifyUrl?: URL;
  /** A file holding a `http_token_file` token that Orion sends with each notification. */
  notifyTokenFile?: string;
  subscribe: FiwareSubscribe[];
  checkIntervalMs: number;
}

export function defaultFiwareConfig(): FiwareConfig {
  return { api: 'v2', subscribe: [], checkIntervalMs: 60_000 };
}

/** Orion's own limits: entity types and attribute names are 1-256 characters without the forbidden ones. */
const NGSI_NAME = /^[^\s<>"'=;()&?/#]{1,256}$/;

export const fiwareKeys: KeySpec<FiwareConfig>[] = [
  {
    key: 'fiware_url',
    usage: 'http://orion:1026',
    doc: 'The context broker: Orion (NGSI v2) or Orion-LD / another NGSI-LD broker.',
    scope: 'beat',
    set(c, v) {
      c.url = urlValue(v, ['http:', 'https:'], 'http://orion:1026');
    },
  },
  {
    key: 'fiware_api',
    usage: 'v2 | ld',
    doc: '`v2`: NGSI v2 subscriptions (`/v2/subscriptions`); `ld`: NGSI-LD subscriptions (`/ngsi-ld/v1/subscriptions`).',
    default: 'v2',
    scope: 'beat',
    set(c, v) {
      c.api = v.count(1).oneOf(['v2', 'ld']);
    },
  },
  {
    key: 'fiware_service',
    usage: '<tenant>',
    doc: 'Tenant: sent as `Fiware-Service` (v2) or `NGSILD-Tenant` (ld) when subscribing; notifications must name the same tenant. Also the first topic level (`default` when not set).',
    scope: 'beat',
    set(c, v) {
      const s = v.count(1).word();
      if (!/^[a-z0-9_]{1,50}$/.test(s)) v.fail(`expected a tenant of 1-50 lowercase letters, digits or _, as Orion accepts, got "${s}"`);
      c.service = s;
    },
  },
  {
    key: 'fiware_servicepath',
    usage: '</path>',
    doc: 'NGSI v2 `Fiware-ServicePath` of the subscriptions (`/a/b`, or `/a/#` for a subtree); notifications from other paths are refused.',
    scope: 'beat',
    set(c, v) {
      const p = v.count(1).word();
      if (!/^\/([A-Za-z0-9_]{1,50}(\/[A-Za-z0-9_]{1,50}){0,9})?(\/#)?$/.test(p))
        v.fail(`expected a service path such as /floor1 or /floor1/#, got "${p}"`);
      c.servicePath = p;
    },
  },
  {
    key: 'fiware_notify_url',
    usage: '<URL ending in /fiware/notify>',
    doc: "The URL the context broker calls back: mqprobe's `http_listener` as Orion reaches it, path `/beats/fiware/notify`.",
    scope: 'beat',
    set(c, v) {
      const u = urlValue(v, ['http:', 'https:'], 'http://mqprobe:8080/beats/fiware/notify');
      if (!u.pathname.endsWith('/fiware/notify'))
        v.fail(`the notification URL must end in /fiware/notify (mqprobe serves /beats/fiware/notify), got "${u.pathname}"`);
      if (u.search) v.fail('the notification URL takes no query: mqprobe adds its own');
      c.notifyUrl = u;
    },
  },
  {
    key: 'fiware_subscribe',
    usage: '<entity type> [attr,attr,…]',
    doc: 'Subscribes to every entity of the type (changes of the listed attributes, or of any); one subscription per line, each notification entity becomes a record on `beats/fiware/<service>/<type>/<id>`.',
    scope: 'beat',
    repeatable: true,
    set(c, v) {
      v.count(1, 2);
      const type = v.word();
      if (!NGSI_NAME.test(type)) v.fail(`"${type.slice(0, 100)}" is not a valid entity type`);
      const attrs = (v.optionalWord(1) ?? '').split(',').filter(Boolean);
      const bad = attrs.find((a) => !NGSI_NAME.test(a));
      if (bad !== undefined) v.fail(`"${bad.slice(0, 100)}" is not a valid attribute name`);
      c.subscribe.push({ type, attrs });
    },
  },
  {
    key: 'fiware_notify_token_file',
    usage: '<file>',
    doc: "A bearer token of the broker's `http_token_file` (one line), put into each subscription so that the context broker sends `Authorization: Bearer <token>` with its notifications (NGSI v2 `httpCustom.headers`, NGSI-LD `endpoint.receiverInfo`): the notification route serves broker identities only, with the publish right on the beat's topic tree (docs/security.md). Without it, notifications arrive as the anonymous user. The context broker stores the token with the subscription.",
    scope: 'beat',
    set(c, v) {
      c.notifyTokenFile = v.count(1).path();
    },
  },
  {
    key: 'fiware_check_interval',
    usage: '<duration>',
    doc: 'How often the beat asks the context broker whether its subscriptions still exist, and re-creates those it forgot.',
    default: '60s',
    scope: 'beat',
    set(c, v) {
      c.checkIntervalMs = v.count(1).durationMs(0, { min: '100ms' });
    },
  },
];

export function checkFiwareConfig(c: FiwareConfig, block: BeatBlock): void {
  const fail = (key: string, detail: string): never => {
    throw new ConfigError(block.pos, key, detail);
  };
  if (!c.url) fail('fiware_url', 'beat fiware needs fiware_url (the context broker, e.g. http://orion:1026)');
  if (!c.notifyUrl)
    fail(
      'fiware_notify_url',
      'beat fiware needs fiware_notify_url (how the context broker reaches mqprobe, ending in /beats/fiware/notify)',
    );
  if (c.subscribe.length === 0) fail('fiware_subscribe', 'beat fiware needs at least one fiware_subscribe <entity type> [attrs]');
  if (c.api === 'ld' && c.servicePath) fail('fiware_servicepath', 'NGSI-LD has no service paths: fiware_servicepath is for fiware_api v2');
}
