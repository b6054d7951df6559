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
  /** Subscription entries of a subscribe event: filter, whether the broker refused it, and its SUBACK code when the event has one. */
  subscriptions?: { filter: string; denied: boolean; code?: number }[];
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

const EMPTY: Obj = Object.freeze({});

/** A part of the event (`event`, `source`, `user`, `mqtt`), or an empty object. */
const part = (v: unknown): Obj => (typeof v === 'object' && v !== null ? (v as Obj) : EMPTY);

/** `{"event.action": …}` → `{"event": {"action": …}}`, for events whose receiver flattened them. */
function unflatten(raw: Obj): Obj {
  const out: Record<string, Obj> = {};
  for (const [k, v] of Object.entries(raw)) {
    const dot = k.indexOf('.');
    if (dot > 0) (out[k.slice(0, dot)] ??= {})[k.slice(dot + 1)] = v;
  }
  return { ...raw, ...out };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

let lastSecond = '';
let lastSecondMs = NaN;

/** The milliseconds of `…SS.mmmZ`, or -1 when those three characters are not digits. */
function millis(v: string): number {
  let ms = 0;
  for (let i = 20; i < 23; i++) {
    const d = v.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    ms = ms * 10 + d;
  }
  return ms;
}

/**
 * ISO-8601 `@timestamp` → epoch ms. Capture writes `YYYY-MM-DDTHH:MM:SS.mmmZ` and consecutive
 * events share their second, so that form is parsed once per second and its milliseconds read
 * digit by digit; any other form goes through Date.parse.
 */
export function parseTimestamp(v: unknown): number | undefined {
  if (typeof v !== 'string') return num(v);
  const ms = v.length === 24 && v.charCodeAt(19) === 46 && v.charCodeAt(23) === 90 ? millis(v) : -1; // '.', 'Z'
  if (ms >= 0) {
    if (lastSecond !== '' && v.startsWith(lastSecond)) return lastSecondMs + ms;
    const second = Date.parse(`${v.slice(0, 19)}Z`);
    if (!Number.isNaN(second)) {
      lastSecond = v.slice(0, 20);
      lastSecondMs = second;
      return second + ms;
    }
  }
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

/** The observation of one capture event, or undefined when it is not an object with an action and a time. */
export function observe(input: unknown): Observation | undefined {
  if (!isObj(input)) return undefined;
  const raw = isObj(input.event) ? input : unflatten(input);
  const ev = part(raw.event);
  const action = str(ev.action);
  const time = parseTimestamp(raw['@timestamp']);
  if (action === undefined || time === undefined) return undefined;
  const o: Observation = { time, seq: num(ev.sequence) ?? -1, action };
  if (!WATCHED_ACTIONS.has(action)) return o;
  const mqtt = part(raw.mqtt);
  o.ip = str(part(raw.source).ip);
  o.user = str(part(raw.user).name);
  o.clientId = str(mqtt.client_id);
  o.topic = str(mqtt.topic);
  o.payloadSize = num(mqtt.payload_size);
  o.reason = str(ev.reason);
  o.reasonCode = num(mqtt.reason_code);
  if (action === 'publish-received') {
    o.payload = str(mqtt.payload);
    o.payloadEncoding = str(mqtt.payload_encoding);
  }
  if (action.startsWith('subscription-')) o.subscriptions = subscriptionsOf(mqtt.subscriptions, o.topic, action === 'subscription-denied');
  return o;
}

/**
 * A subscribe event carries either `mqtt.subscriptions[]` (a granted QoS of 128 or more is a
 * refusal) or a single `mqtt.topic`.
 */
function subscriptionsOf(list: unknown, topic: string | undefined, denied: boolean): NonNullable<Observation['subscriptions']> {
  const out: NonNullable<Observation['subscriptions']> = [];
  if (Array.isArray(list)) {
    for (const s of list) {
      if (!isObj(s)) continue;
      const filter = str(s.topic);
      if (filter === undefined) continue;
      const granted = num(s.granted_qos);
      out.push({ filter, denied: denied || (granted !== undefined && granted >= 128), code: granted });
    }
  }
  if (out.length === 0 && topic !== undefined) out.push({ filter: topic, denied });
  return out;
}
