/**
 * Commands MQTT clients of mqprobe publish under `<prefix>/rpc/` (default `beats/things/rpc/`):
 *
 * - `<device>/<request id>`: the reply to ThingsBoard's RPC request `<request id>` for `<device>`;
 *   the payload is the result (JSON, or any other text, sent as a JSON string).
 * - `<device>/attributes`: ask ThingsBoard for attributes of `<device>`; payload
 *   `{"client": ["key", …], "shared": ["key", …]}`. The answer comes out as an `attributes` record.
 *
 * `<device>` is the device's topic level as the beat publishes it (see deviceLevel).
 */
import { JsonDepthError, parseBoundedJson } from '../../broker/bounded-json.js';

export type Command =
  | { kind: 'rpc-reply'; deviceLevel: string; id: number; result: unknown }
  | { kind: 'attribute-request'; deviceLevel: string; client: string[]; shared: string[] };

/** Keys one attribute request may ask for. */
const MAX_KEYS = 1000;
/** Bigger command payloads are refused before JSON.parse. */
const MAX_COMMAND_BYTES = 1024 * 1024;

/** `rest`: the topic after `<prefix>/rpc/`. */
export function parseCommand(rest: string, payload: Buffer): Command | { error: string } {
  const levels = rest.split('/');
  if (levels.length !== 2 || levels[0] === '') return { error: 'expected <device>/<request id> or <device>/attributes' };
  const [deviceLevel, what] = levels;
  if (payload.length > MAX_COMMAND_BYTES) return { error: `payload of ${payload.length} bytes is larger than ${MAX_COMMAND_BYTES}` };
  const text = payload.toString('utf8');
  if (what === 'attributes') return attributeRequest(deviceLevel, text);
  if (!/^\d{1,15}$/.test(what)) return { error: `"${what.slice(0, 40)}" is neither a request id nor "attributes"` };
  let result: unknown;
  try {
    result = parseBoundedJson(text);
  } catch (err) {
    if (err instanceof JsonDepthError) return { error: `reply ${err.message}` };
    result = text;
  }
  return { kind: 'rpc-reply', deviceLevel, id: Number(what), result };
}

function attributeRequest(deviceLevel: string, text: string): Command | { error: string } {
  let body: unknown;
  try {
    body = parseBoundedJson(text);
  } catch (err) {
    if (err instanceof JsonDepthError) return { error: `attribute request ${err.message}` };
    return { error: 'attribute request is not JSON ({"client": [keys], "shared": [keys]})' };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return { error: 'attribute request is not a JSON object ({"client": [keys], "shared": [keys]})' };
  const { client = [], shared = [] } = body as { client?: unknown; shared?: unknown };
  const keyList = (v: unknown) => Array.isArray(v) && v.every((k) => typeof k === 'string' && k !== '' && !k.includes(','));
  if (!keyList(client) || !keyList(shared)) return { error: '"client" and "shared" must be lists of attribute names (without commas)' };
  const c = client as string[];
  const s = shared as string[];
  if (c.length + s.length === 0) return { error: 'attribute request names no key' };
  if (c.length + s.length > MAX_KEYS) return { error: `attribute request names more than ${MAX_KEYS} keys` };
  return { kind: 'attribute-request', deviceLevel, client: c, shared: s };
}
