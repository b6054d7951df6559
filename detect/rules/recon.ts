import type { Observation } from '../observation.js';
import { maxTrackedParam, thresholdParams, WINDOWED, type Params } from '../params.js';
import { humanWindow, isInternal, type Emit, type RuleDefinition } from '../detector.js';
import { DistinctWindow, ThresholdCounter, stateOf, trackedMap } from '../windows.js';

/** A shared subscription `$share/<group>/<filter>` subscribes to <filter>. */
function plainFilter(filter: string): string {
  if (!filter.startsWith('$share/')) return filter;
  const slash = filter.indexOf('/', 7);
  return slash < 0 ? filter : filter.slice(slash + 1);
}

/** `#`, `+/#`, `+/+/#` (every topic) or `$SYS/#`, `$SYS/+/#` (every broker topic). */
export function isBroadFilter(filter: string): boolean {
  return /^(\$SYS\/)?(\+\/)*#$/.test(plainFilter(filter));
}

/** Allow-list entries are exact names, or prefixes when they end in `*`. */
export function allowed(list: string[], name: string | undefined): boolean {
  if (name === undefined) return false;
  return list.some((a) => (a.endsWith('*') ? name.startsWith(a.slice(0, -1)) : name === a));
}

/**
 * SUBACK codes that are the ACL's answer: 3.1.1's failure (0x80) and MQTT 5's "not authorized" (0x87).
 * Other MQTT 5 refusals say what the broker cannot do, not what the client may not: 0x9E shared
 * subscriptions not supported, 0x97 quota exceeded, 0xA1 subscription identifiers not supported…
 */
const ACL_SUBACK_CODES = new Set([0x80, 0x87]);
const aclRefused = (s: { denied: boolean; code?: number }) => s.denied && (s.code === undefined || ACL_SUBACK_CODES.has(s.code));

/** Sample of a long list for an alert (the full count is beside it). */
const sample = (items: string[]) => items.slice(0, 20);

export const wildcardSubscription: RuleDefinition = {
  spec: {
    name: 'wildcard-subscription',
    description:
      'A client that has not done so before subscribes (or tries to) to every topic (`#`) or to all of `$SYS`: reconnaissance of what the broker carries.',
    entity: 'mqtt.client_id',
    risk: 'medium',
    minimum: 'one subscription to `#`, `+/#`, `$SYS/#` (also as `$share/<group>/…`) by a client id not yet known for it',
    params: [
      {
        name: 'allow_clients',
        kind: 'list',
        default: '-',
        doc: 'Client ids that may subscribe to everything (comma list; `name*` is a prefix; `-` for none), e.g. your historian.',
      },
      { name: 'allow_users', kind: 'list', default: '-', doc: 'User names that may subscribe to everything (same syntax).' },
      maxTrackedParam('Client ids known to subscribe to everything'),
    ],
  },
  create(p: Params, emit: Emit) {
    const allowClients = p.list('allow_clients');
    const allowUsers = p.list('allow_users');
    /** Client ids that were granted a broad subscription: they "normally do so" from then on. */
    const known = trackedMap<true>(p.num('max_tracked'));
    return {
      actions: ['subscription-granted', 'subscription-denied'],
      observe(o) {
        const id = o.clientId;
        if (id === undefined || isInternal(id) || known.has(id) || allowed(allowClients, id) || allowed(allowUsers, o.user)) return;
        for (const s of o.subscriptions ?? []) {
          if (!isBroadFilter(s.filter)) continue;
          if (!s.denied) known.set(id, true);
          emit({
            key: `client ${id}`,
            time: o.time,
            message: `client ${id} subscribed to ${s.filter}${s.denied ? ' (denied)' : ''}, which it has not done before`,
            entities: { clientId: id, ip: o.ip, user: o.user, topic: s.filter },
            evidence: { filter: s.filter, denied: s.denied, sequences: o.seq >= 0 ? [o.seq] : [] },
          });
          return;
        }
      },
    };
  },
};

interface ScanState {
  filters?: DistinctWindow;
  topics?: DistinctWindow;
}

const newScan = (): ScanState => ({});

export const topicScan: RuleDefinition = {
  spec: {
    name: 'topic-scan',
    description:
      'One client subscribing to many different topic filters, or publishing to many different topics, in a short time: mapping the topic tree or probing what it may write.',
    entity: 'mqtt.client_id',
    risk: 'medium',
    minimum: '20 distinct filters, or 50 distinct publish topics, from one client within 60 s',
    params: [
      {
        name: 'filters',
        kind: 'count',
        default: '20',
        doc: 'Distinct topic filters (granted or denied) one client subscribes to that raise the alert.',
        min: 2,
      },
      {
        name: 'topics',
        kind: 'count',
        default: '50',
        doc: 'Distinct topics (accepted or denied) one client publishes to that raise the alert. Keep it above what your gateways publish per window.',
        min: 2,
      },
      { name: 'window', kind: 'duration', default: '60s', doc: 'Sliding window the distinct filters or topics must fall in.' },
      maxTrackedParam('Client ids', WINDOWED),
    ],
  },
  create(p: Params, emit: Emit) {
    const window = p.num('window');
    const limits = { filters: p.num('filters'), topics: p.num('topics') };
    const clients = trackedMap<ScanState>(p.num('max_tracked'));
    const count = (o: Observation, kind: 'filters' | 'topics', item: string): boolean => {
      const st = stateOf(clients, o.clientId!, newScan);
      const seen = (st[kind] ??= new DistinctWindow());
      const n = seen.add(item, o.time, o.seq, window, limits[kind]);
      if (n < limits[kind]) return false;
      const items = seen.items();
      emit({
        key: `client ${o.clientId}`,
        time: o.time,
        message: `client ${o.clientId} ${kind === 'filters' ? 'subscribed to' : 'published to'} ${n} different ${kind === 'filters' ? 'topic filters' : 'topics'} within ${humanWindow(window)}`,
        entities: { clientId: o.clientId, ip: o.ip, user: o.user },
        evidence: {
          kind,
          distinct: n,
          threshold: limits[kind],
          window_s: window / 1000,
          sample: sample(items),
          sequences: seen.sequences(),
        },
      });
      seen.clear();
      return true;
    };
    return {
      actions: ['subscription-granted', 'subscription-denied', 'publish-received', 'publish-denied'],
      observe(o) {
        if (o.clientId === undefined || isInternal(o.clientId)) return;
        if (o.subscriptions) {
          for (const s of o.subscriptions) if (count(o, 'filters', s.filter)) return;
        } else if (o.topic !== undefined) {
          count(o, 'topics', o.topic);
        }
      },
    };
  },
};

export const aclDenials: RuleDefinition = {
  spec: {
    name: 'acl-denials',
    description:
      'One client refused by the ACL again and again (publishes dropped, subscriptions denied with SUBACK 0x80, or 0x87 for MQTT 5): probing for what it may read or write. MQTT 5 refusals of what the broker cannot do (0x9E shared subscriptions not supported, 0x97 quota exceeded …) do not count.',
    entity: 'mqtt.client_id',
    risk: 'medium',
    minimum: '10 ACL denials of one client within 60 s',
    params: [...thresholdParams('10', 'Denied publishes and subscriptions of one client', '60s', 'Client ids')],
  },
  create(p: Params, emit: Emit) {
    const counter = ThresholdCounter.of(p);
    const deny = (o: Observation, what: string): boolean => {
      const ev = counter.hit(o.clientId!, o.time, o.seq);
      if (!ev) return false;
      emit({
        key: `client ${o.clientId}`,
        time: o.time,
        message: `client ${o.clientId} was refused by the ACL ${ev.count} times within ${ev.span_s} s (last: ${what})`,
        entities: { clientId: o.clientId, ip: o.ip, user: o.user },
        evidence: { ...ev, last: what },
      });
      return true;
    };
    return {
      actions: ['publish-denied', 'subscription-granted', 'subscription-denied'],
      observe(o) {
        if (o.clientId === undefined || isInternal(o.clientId)) return;
        if (o.action === 'publish-denied') {
          deny(o, `publish to ${o.topic ?? '?'}`);
          return;
        }
        for (const s of o.subscriptions ?? []) if (aclRefused(s) && deny(o, `subscribe to ${s.filter}`)) return;
      },
    };
  },
};
