import { observeWrites } from './packet-writes.js';

/**
 * MQTT 5 facts capture reports that the engine forgets before its events fire: the CONNECT's
 * properties (Aedes keeps a few of them as client fields, not the user properties or the
 * authentication method), the reason code of the client's DISCONNECT, the topic alias of a PUBLISH
 * (Aedes strips it once resolved) and the reason codes of the UNSUBACK it wrote just before its
 * unsubscribe event. Nothing here changes what the engine does.
 */

/** The CONNECT properties capture may show: names of user properties, never values nor authentication data. */
export interface ConnectFacts {
  userPropertyNames?: string[];
  authenticationMethod?: string;
  maximumPacketSize?: number;
  topicAliasMaximum?: number;
  requestedSessionExpiry?: number;
}

/**
 * The alias a PUBLISH arrived with. An own enumerable symbol key: the engine's copy of the
 * properties without `topicAlias` (object spread) keeps it, while mqtt-packet's writer (for…in) and
 * every serialising persistence (JSON, msgpack) ignore symbol keys, so no subscriber sees it.
 */
const TOPIC_ALIAS = Symbol('mqprobe.topicAlias');

interface RawPacket {
  cmd: string;
  subscriptions?: { qos: number }[];
  reasonCode?: number;
  properties?: Record<string | symbol, unknown> & { topicAlias?: number; userProperties?: Record<string, unknown> };
}
interface ParserOwner {
  conn?: object;
  _parser?: { prependListener(event: 'packet', fn: (this: { client: object }, p: RawPacket) => void): unknown };
}

const connects = new WeakMap<object, ConnectFacts>();
const clientDisconnects = new WeakMap<object, number>();
const unsubacks = new WeakMap<object, number[]>();
/** The QoS each subscription asked for (Aedes overwrites it with the SUBACK's reason code). */
const requestedQos = new WeakMap<object, number>();

/** Names of the user properties of a properties block (mqtt-packet decodes them into an object). */
export function userPropertyNames(properties: { userProperties?: Record<string, unknown> } | undefined): string[] | undefined {
  const up = properties?.userProperties;
  return up ? Object.keys(up) : undefined;
}

/** Called with every CONNECT (access.ts' preConnect, the first thing Aedes does with it) before its packets are handled. */
export function watchMqtt5(client: object, packet: { protocolVersion?: number; properties?: RawPacket['properties'] }): void {
  if (packet.protocolVersion !== 5) return;
  const p = packet.properties;
  const facts: ConnectFacts = {};
  const names = userPropertyNames(p);
  if (names) facts.userPropertyNames = names;
  if (typeof p?.authenticationMethod === 'string') facts.authenticationMethod = p.authenticationMethod;
  if (typeof p?.maximumPacketSize === 'number') facts.maximumPacketSize = p.maximumPacketSize;
  if (typeof p?.topicAliasMaximum === 'number') facts.topicAliasMaximum = p.topicAliasMaximum;
  if (typeof p?.sessionExpiryInterval === 'number') facts.requestedSessionExpiry = p.sessionExpiryInterval;
  connects.set(client, facts);
  // prepended: the raw packet is seen before Aedes handles (and strips) it
  (client as ParserOwner)._parser?.prependListener('packet', recordPacketIn);
  const conn = (client as ParserOwner).conn;
  if (conn) observeWrites(conn, recordUnsuback);
}

/** One listener for every MQTT 5 client's parser (`this`; the engine sets its `client`). */
function recordPacketIn(this: { client: object }, raw: RawPacket): void {
  if (raw.cmd === 'publish') {
    const alias = raw.properties?.topicAlias;
    if (alias !== undefined) raw.properties![TOPIC_ALIAS] = alias;
  } else if (raw.cmd === 'subscribe') {
    for (const s of raw.subscriptions ?? []) requestedQos.set(s, s.qos);
  } else if (raw.cmd === 'disconnect') clientDisconnects.set(this.client, raw.reasonCode ?? 0);
}

/** The engine sets `client` on the connection it reads. */
function recordUnsuback(p: { cmd: string }, conn: object): void {
  if (p.cmd === 'unsuback') unsubacks.set((conn as { client: object }).client, (p as { granted?: number[] }).granted ?? []);
}

/** The MQTT 5 CONNECT's properties as capture may show them (undefined for 3.1.1 and 3.1). */
export const connectFactsOf = (c: object): ConnectFacts | undefined => connects.get(c);

/** The reason code of the DISCONNECT the client sent (MQTT 5; undefined when it sent none). */
export const clientDisconnectReasonOf = (c: object): number | undefined => clientDisconnects.get(c);

/** The topic alias the PUBLISH with these properties arrived with (its topic is already the resolved one). */
export const topicAliasOf = (properties: object | undefined): number | undefined =>
  (properties as Record<symbol, number> | undefined)?.[TOPIC_ALIAS];

/** The reason codes of the last UNSUBACK written to an MQTT 5 client, one per topic of its UNSUBSCRIBE. */
export const unsubackReasonsOf = (c: object): number[] | undefined => unsubacks.get(c);

/** The QoS an MQTT 5 SUBSCRIBE asked for in this subscription (its `qos` is the granted QoS or the refusal's reason code by the subscribe event). */
export const requestedQosOf = (sub: object): number | undefined => requestedQos.get(sub);
