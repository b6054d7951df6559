import { topicPath } from '../shared/topic.js';
import { isJsonObject } from '../shared/json-object.js';
import { JSON_MAX_DEPTH, JsonDepthError, parseBoundedJson } from '../../broker/bounded-json.js';

/**
 * ThingsBoard MQTT messages → mqprobe records. Pure functions: a message in, the device events it
 * carries and the problems it had out. Shapes follow ThingsBoard's gateway MQTT API
 * (https://thingsboard.io/docs/reference/gateway-mqtt-api/) and device MQTT API; every entry is
 * checked on its own, so one bad device entry costs only itself.
 */

export type ThingsKind = 'attributes' | 'telemetry' | 'rpc' | 'connect' | 'disconnect' | 'claim';

export interface ThingsEvent {
  device: string;
  kind: ThingsKind;
  /** The record as published in the `raw` format. */
  data: Record<string, unknown>;
  /** NGSI attributes of entity `urn:ngsi-ld:Device:<device>`. */
  attributes: Record<string, unknown>;
  /** When the device observed it (telemetry `ts`), epoch ms. */
  time?: number;
}

export interface Parsed {
  events: ThingsEvent[];
  /** One sentence per rejected message or entry (never its content). */
  problems: string[];
}

/** Keys asked for in an attribute request, by request id, to name the lone `value` of its answer. */
export type PendingKeys = (device: string, id: number) => string[] | undefined;

/** ThingsBoard limits device names to 255 characters. */
export const MAX_DEVICE_NAME = 255;
/** Bigger messages are refused before JSON.parse. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

export const GATEWAY_TOPICS = [
  'v1/gateway/attributes',
  'v1/gateway/attributes/response',
  'v1/gateway/rpc',
  'v1/gateway/telemetry',
  'v1/gateway/connect',
  'v1/gateway/disconnect',
  'v1/gateway/claim',
] as const;

export const DEVICE_TOPICS = [
  'v1/devices/me/attributes',
  'v1/devices/me/attributes/response/+',
  'v1/devices/me/rpc/request/+',
  'v1/devices/me/telemetry',
] as const;

type Json = Record<string, unknown>;

/** A device name as one topic level below the beat's prefix: the wildcards, NUL and `/` become `_`. */
export function deviceLevel(device: string): string {
  return topicPath(device.replace(/\//g, '_'));
}

class Collector implements Parsed {
  events: ThingsEvent[] = [];
  problems: string[] = [];

  constructor(readonly topic: string) {}

  problem(detail: string): void {
    this.problems.push(`${this.topic}: ${detail}`);
  }

  /** A device name, or undefined (and a problem) when it is unusable. */
  device(name: unknown, where: string): string | undefined {
    if (typeof name !== 'string' || name.trim() === '') return void this.problem(`${where}: device name missing or not a string`);
    if (name.length > MAX_DEVICE_NAME) return void this.problem(`${where}: device name longer than ${MAX_DEVICE_NAME} characters`);
    return name;
  }

  /** A one-device message `{"device": …, …}`: the object and its device, or undefined (and a problem). */
  single(msg: unknown, what: string): { m: Json; device: string } | undefined {
    if (!isJsonObject(msg)) return void this.problem(`${what} is not a JSON object`);
    const device = this.device(msg.device, what);
    return device === undefined ? undefined : { m: msg, device };
  }

  add(device: string, kind: ThingsKind, data: Json, attributes: Json, time?: number): void {
    this.events.push({ device, kind, data: { device, ...data }, attributes, time });
  }

  attributes(device: string, source: 'update' | 'publish' | 'response', values: Json): void {
    this.add(device, 'attributes', { source, attributes: values }, values);
  }

  /** One telemetry entry: `{ts, values}` or plain key-value pairs (the server's clock then counts). */
  telemetry(device: string, entry: unknown, where: string): void {
    if (!isJsonObject(entry)) return this.problem(`${where}: telemetry entry is not a JSON object`);
    if ('values' in entry) {
      const { ts, values } = entry;
      if (!isJsonObject(values)) return this.problem(`${where}: telemetry "values" is not a JSON object`);
      if (ts !== undefined && !(typeof ts === 'number' && Number.isFinite(ts) && new Date(ts).getTime() === ts))
        return this.problem(`${where}: telemetry "ts" is not a time in epoch milliseconds`);
      this.add(device, 'telemetry', { ts, values }, values, ts as number | undefined);
      return;
    }
    this.add(device, 'telemetry', { values: entry }, entry);
  }

  rpcRequest(device: string, id: unknown, method: unknown, params: unknown, where: string): void {
    if (!Number.isSafeInteger(id) || (id as number) < 0) return this.problem(`${where}: RPC request id is not a non-negative integer`);
    if (typeof method !== 'string' || method === '') return this.problem(`${where}: RPC request has no method`);
    this.add(device, 'rpc', { direction: 'request', id, method, params }, { rpcId: id, rpcMethod: method, rpcParams: params });
  }
}

/** Parses the bytes as one JSON value; undefined (and a problem) when they are not. */
function json(c: Collector, payload: Buffer): unknown {
  if (payload.length > MAX_MESSAGE_BYTES) return void c.problem(`message of ${payload.length} bytes is larger than ${MAX_MESSAGE_BYTES}`);
  try {
    return parseBoundedJson(payload);
  } catch (err) {
    if (err instanceof JsonDepthError) return void c.problem(`message nests deeper than ${JSON_MAX_DEPTH} levels`);
    return void c.problem(`message is not valid JSON (${payload.length} bytes)`);
  }
}

/** Each `"<device>": <entry>` of a multi-device message. */
function perDevice(c: Collector, msg: unknown, each: (device: string, entry: unknown, where: string) => void): void {
  if (!isJsonObject(msg)) return c.problem('expected a JSON object keyed by device name');
  for (const [name, entry] of Object.entries(msg)) {
    const where = `device entry ${JSON.stringify(name.slice(0, 64))}`;
    const device = c.device(name, where);
    if (device !== undefined) each(device, entry, where);
  }
}

/** A message on a gateway API topic (`v1/gateway/...`). */
export function parseGatewayMessage(topic: string, payload: Buffer, pending: PendingKeys): Parsed {
  const c = new Collector(topic);
  const msg = json(c, payload);
  if (msg === undefined) return c;
  switch (topic) {
    case 'v1/gateway/attributes':
      // ThingsBoard → gateway: {"device": "A", "data": {...}}; gateway → ThingsBoard: {"A": {...}, "B": {...}}
      if (isJsonObject(msg) && typeof msg.device === 'string') {
        const device = c.device(msg.device, 'attribute update');
        if (device === undefined) break;
        if (!isJsonObject(msg.data)) c.problem('attribute update: "data" is not a JSON object');
        else c.attributes(device, 'update', msg.data);
      } else {
        perDevice(c, msg, (device, entry, where) =>
          isJsonObject(entry) ? c.attributes(device, 'publish', entry) : c.problem(`${where}: attributes are not a JSON object`),
        );
      }
      break;
    case 'v1/gateway/attributes/response': {
      const one = c.single(msg, 'attribute response');
      if (!one) break;
      const { m, device } = one;
      if (isJsonObject(m.values)) c.attributes(device, 'response', m.values);
      else if ('value' in m) {
        const keys = Number.isSafeInteger(m.id) ? pending(device, m.id as number) : undefined;
        if (keys?.length === 1) c.attributes(device, 'response', Object.fromEntries([[keys[0], m.value]]));
        else c.problem('attribute response: "value" answers no request this beat made');
      } else c.problem('attribute response has neither "value" nor "values"');
      break;
    }
    case 'v1/gateway/rpc': {
      const one = c.single(msg, 'RPC message');
      if (!one) break;
      const { m, device } = one;
      if (isJsonObject(m.data) && 'method' in m.data) c.rpcRequest(device, m.data.id, m.data.method, m.data.params, 'RPC request');
      else if (Number.isSafeInteger(m.id))
        c.add(device, 'rpc', { direction: 'response', id: m.id, result: m.data }, { rpcId: m.id, rpcResult: m.data });
      else c.problem('RPC message is neither a request ({"device", "data": {"id", "method"}}) nor a response ({"device", "id", "data"})');
      break;
    }
    case 'v1/gateway/telemetry':
      perDevice(c, msg, (device, entries, where) => {
        for (const entry of Array.isArray(entries) ? entries : [entries]) c.telemetry(device, entry, where);
      });
      break;
    case 'v1/gateway/connect':
    case 'v1/gateway/disconnect': {
      const kind = topic === 'v1/gateway/connect' ? 'connect' : 'disconnect';
      const one = c.single(msg, `${kind} message`);
      if (!one) break;
      const { m, device } = one;
      if (m.type !== undefined && typeof m.type !== 'string') c.problem(`${kind} message: "type" is not a string`);
      else if (kind === 'connect') c.add(device, kind, { type: m.type }, { connected: true, deviceType: m.type });
      else c.add(device, kind, {}, { connected: false });
      break;
    }
    case 'v1/gateway/claim':
      perDevice(c, msg, (device, entry, where) => {
        if (!isJsonObject(entry)) return c.problem(`${where}: claim is not a JSON object`);
        const { durationMs } = entry;
        if (durationMs !== undefined && !Number.isSafeInteger(durationMs))
          return c.problem(`${where}: claim "durationMs" is not an integer`);
        // the claiming secret is a credential: it is reported present, never republished
        c.add(
          device,
          'claim',
          { durationMs, secretKey: typeof entry.secretKey === 'string' ? '[redacted]' : undefined },
          { claimDurationMs: durationMs },
        );
      });
      break;
    default:
      c.problem('not a gateway API topic');
  }
  return c;
}

/** A message on a device API topic (`v1/devices/me/...`) for the configured device. */
export function parseDeviceMessage(topic: string, payload: Buffer, device: string): Parsed {
  const c = new Collector(topic);
  const msg = json(c, payload);
  if (msg === undefined) return c;
  const levels = topic.split('/');
  if (topic === 'v1/devices/me/attributes') {
    if (isJsonObject(msg)) c.attributes(device, 'update', msg);
    else c.problem('attributes are not a JSON object');
  } else if (topic === 'v1/devices/me/telemetry') {
    for (const entry of Array.isArray(msg) ? msg : [msg]) c.telemetry(device, entry, 'telemetry');
  } else if (levels.length === 6 && topic.startsWith('v1/devices/me/attributes/response/')) {
    if (!isJsonObject(msg)) c.problem('attribute response is not a JSON object');
    else {
      // the answer to {"clientKeys", "sharedKeys"}: both scopes, merged for the attribute view
      const client = isJsonObject(msg.client) ? msg.client : {};
      const shared = isJsonObject(msg.shared) ? msg.shared : {};
      c.add(device, 'attributes', { source: 'response', attributes: { ...client, ...shared }, client, shared }, { ...client, ...shared });
    }
  } else if (levels.length === 6 && topic.startsWith('v1/devices/me/rpc/request/')) {
    if (!isJsonObject(msg)) c.problem('RPC request is not a JSON object');
    else c.rpcRequest(device, /^\d{1,15}$/.test(levels[5]) ? Number(levels[5]) : undefined, msg.method, msg.params, 'RPC request');
  } else c.problem('not a device API topic');
  return c;
}
