/**
 * The few facts of a capture event the detectors look at, read once per event. Capture events
 * are ECS objects (`{"event": {"action": …}}`); flattened keys (`"event.action"`), as some
 * receivers re-emit them, are read too, so a replay works on either.
 */
export interface Observation {
  /** Event time, epoch ms (from `@timestamp`). */
  time: number;
  /** `event.sequence`, or -1 when the event has none. */
  seq: number;
  action: string;
  ip?: string;
  user?: string;
  clientId?: string;
  topic?: string;
  payloadSize?: number;
  /** `mqtt.payload` when capture copied it (utf8 or base64, see `payloadEncoding`). */
  payload?: string;
  payloadEncoding?: string;
  /** `event.reason` of a refusal (`bad-credentials`, `unknown-user`, …). */
  reason?: string;
  /** `mqtt.reason_code` (CONNACK return code / reason code). */
  reasonCode?: number;
  /** Subscription entries of a subscribe event: filter and whether the broker refused it. */
  subscriptions?: { filter: string; denied: boolean }[];
}

/** The actions the detectors react to; every other event only moves the clock. */
export const WATCHED_ACTIONS = new Set([
  'client-connected',
  'connection-refused',
  'publish-received',
  'publish-denied',
  'subscription-granted',
  'subscription-denied',
]);

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `e.a.b`, or the flattened `e["a.b"]`. */
function get2(e: Obj, a: string, b: string): unknown {
  const inner = e[a];
  if (isObj(inner) && b in inner) return inner[b];
  return e[`${a}.${b}`];
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

let lastStamp = '';
let lastTime = NaN;

/** ISO-8601 `@timestamp` → epoch ms; consecutive events often share a millisecond, so the last one is remembered. */
export function parseTimestamp(v: unknown): number | undefined {
  if (typeof v !== 'string') return num(v);
  if (v === lastStamp) return lastTime;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  lastStamp = v;
  lastTime = t;
  return t;
}

/** The observation of one capture event, or undefined when it is not an object with an action and a time. */
export function observe(raw: unknown): Observation | undefined {
  if (!isObj(raw)) return undefined;
  const action = str(get2(raw, 'event', 'action'));
  const time = parseTimestamp(raw['@timestamp']);
  if (action === undefined || time === undefined) return undefined;
  const o: Observation = { time, seq: num(get2(raw, 'event', 'sequence')) ?? -1, action };
  if (!WATCHED_ACTIONS.has(action)) return o;
  o.ip = str(get2(raw, 'source', 'ip'));
  o.user = str(get2(raw, 'user', 'name'));
  o.clientId = str(get2(raw, 'mqtt', 'client_id'));
  o.topic = str(get2(raw, 'mqtt', 'topic'));
  o.payloadSize = num(get2(raw, 'mqtt', 'payload_size'));
  o.reason = str(get2(raw, 'event', 'reason'));
  o.reasonCode = num(get2(raw, 'mqtt', 'reason_code'));
  if (action === 'publish-received') {
    o.payload = str(get2(raw, 'mqtt', 'payload'));
    o.payloadEncoding = str(get2(raw, 'mqtt', 'payload_encoding'));
  }
  if (action.startsWith('subscription-')) o.subscriptions = subscriptionsOf(get2(raw, 'mqtt', 'subscriptions'), o.topic, action === 'subscription-denied');
  return o;
}

/**
 * A subscribe event carries either `mqtt.subscriptions[]` (a granted QoS of 128 or more is a
 * refusal) or a single `mqtt.topic`.
 */
function subscriptionsOf(list: unknown, topic: string | undefined, denied: boolean): { filter: string; denied: boolean }[] {
  const out: { filter: string; denied: boolean }[] = [];
  if (Array.isArray(list)) {
    for (const s of list) {
      if (!isObj(s)) continue;
      const filter = str(s.topic);
      if (filter === undefined) continue;
      const granted = num(s.granted_qos);
      out.push({ filter, denied: denied || (granted !== undefined && granted >= 128) });
    }
  }
  if (out.length === 0 && topic !== undefined) out.push({ filter: topic, denied });
  return out;
}
