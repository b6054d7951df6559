import type { Observation } from '../observation.js';
import { maxTrackedParam, thresholdParams, WINDOWED, type Params } from '../params.js';
import { humanWindow, type Emit, type RuleDefinition } from '../detector.js';
import { DistinctWindow, ThresholdCounter, stateOf, trackedMap } from '../windows.js';

/** CONNACK codes that mean "who you say you are was not accepted": 3.1.1 (4, 5) and 5.0 (0x86, 0x87, 0x8C). */
const CREDENTIAL_CODES = new Set([4, 5, 0x86, 0x87, 0x8c]);

const REASONS = {
  name: 'reasons',
  kind: 'list',
  default: 'bad-credentials,unknown-user,not-authorized',
  doc: 'A refusal counts by its CONNACK code (`mqtt.reason_code` 4, 5, 0x86, 0x87, 0x8C) whatever its reason text; one without such a code counts when its `event.reason` is in this list.',
} as const;

/** mqprobe's refusal of a banned entity: the ban's consequence, not a new guess (it would prolong the ban forever). */
const BANNED = 'banned';

/**
 * A refused CONNECT whose reason is the credentials: by the protocol's fact first (the CONNACK
 * code, which every producer sends), by the producer's reason text second.
 */
export function credentialFailure(o: Observation, reasons: readonly string[]): boolean {
  if (o.ip === undefined || o.reason === BANNED) return false;
  if (o.reasonCode !== undefined && CREDENTIAL_CODES.has(o.reasonCode)) return true;
  return o.reason !== undefined && reasons.includes(o.reason);
}

export const bruteForce: RuleDefinition = {
  spec: {
    name: 'auth-brute-force',
    description: 'Many connections refused for bad credentials from one source address: password guessing.',
    entity: 'source.ip',
    risk: 'high',
    minimum: '10 refused logins from one address within 60 s',
    params: [...thresholdParams('10', 'Credential refusals from one address', '60s', 'Source addresses'), REASONS],
  },
  create(p: Params, emit: Emit) {
    const reasons = p.list('reasons');
    const counter = ThresholdCounter.of(p);
    return {
      actions: ['connection-refused'],
      observe(o) {
        if (!credentialFailure(o, reasons)) return;
        const ev = counter.hit(o.ip!, o.time, o.seq);
        if (!ev) return;
        emit({
          key: `ip ${o.ip}`,
          time: o.time,
          message: `${ev.count} connections refused for bad credentials from ${o.ip} within ${ev.span_s} s`,
          entities: { ip: o.ip, user: o.user, clientId: o.clientId },
          evidence: ev,
        });
      },
    };
  },
};

export const credentialStuffing: RuleDefinition = {
  spec: {
    name: 'credential-stuffing',
    description: 'Many different user names refused from one source address: a list of stolen or guessed credentials being tried.',
    entity: 'source.ip',
    risk: 'high',
    minimum: '5 distinct refused user names from one address within 5 min',
    params: [
      { name: 'users', kind: 'count', default: '5', doc: 'Distinct refused user names from one address that raise the alert.', min: 2 },
      { name: 'window', kind: 'duration', default: '5m', doc: 'Sliding window the refusals must fall in.' },
      REASONS,
      maxTrackedParam('Source addresses', WINDOWED),
    ],
  },
  create(p: Params, emit: Emit) {
    const users = p.num('users');
    const window = p.num('window');
    const reasons = p.list('reasons');
    const sources = trackedMap<DistinctWindow>(p.num('max_tracked'));
    return {
      actions: ['connection-refused'],
      observe(o) {
        if (o.user === undefined || !credentialFailure(o, reasons)) return;
        const seen = stateOf(sources, o.ip!, () => new DistinctWindow());
        const n = seen.add(o.user, o.time, o.seq, window, users);
        if (n < users) return;
        emit({
          key: `ip ${o.ip}`,
          time: o.time,
          message: `${n} different user names refused from ${o.ip} within ${humanWindow(window)}`,
          entities: { ip: o.ip, user: o.user, clientId: o.clientId },
          evidence: { distinct_users: n, threshold: users, window_s: window / 1000, users: seen.items(), sequences: seen.sequences() },
        });
        seen.clear();
      },
    };
  },
};
