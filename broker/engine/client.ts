/**
 * A client as the areas above the broker see it: its id and its identity (a key for WeakMaps). It is
 * the engine's own client object, typed so that nothing outside broker/engine/ can reach into it; what
 * capture and detection need to know about a client is read through the functions below.
 */
export interface ClientHandle {
  readonly id: string;
}

/** The Aedes 1.2 client fields the accessors read (Aedes keeps some of them private). */
interface AedesClientFields {
  version?: number;
  clean?: boolean;
  closed?: boolean;
  connackSent?: boolean;
  will?: { topic?: string } | null;
  /** Aedes' keepalive timer period: 1.5 × the CONNECT keepalive in ms, plus 1 (0 or absent: none). */
  _keepaliveInterval?: number;
}

const fields = (c: ClientHandle) => c as unknown as AedesClientFields;

/** The MQTT protocol level of its CONNECT (3 = 3.1, 4 = 3.1.1, 5). */
export const protocolVersionOf = (c: ClientHandle): number | undefined => fields(c).version;

export const cleanSessionOf = (c: ClientHandle): boolean | undefined => fields(c).clean;

/** The keepalive of its CONNECT in seconds (0: none, or not connected yet). */
export function keepaliveOf(c: ClientHandle): number {
  const ki = fields(c)._keepaliveInterval ?? -1;
  return ki > 0 ? Math.round((ki - 1) / 1500) : 0;
}

/** True once the client's connection is closing (a will it had is being published as its publish). */
export const isClosed = (c: ClientHandle): boolean => fields(c).closed === true;

/** True once its CONNACK went out (before, the broker sends the client nothing). */
export const connackSentTo = (c: ClientHandle): boolean => fields(c).connackSent === true;

/** The topic of the will it connected with, if any. */
export const willTopicOf = (c: ClientHandle): string | undefined => fields(c).will?.topic;

/** Bytes written to the client's connection that it has not taken yet (its send queue). */
export const queuedBytesOf = (c: ClientHandle): number =>
  (c as unknown as { conn?: { writableLength?: number } }).conn?.writableLength ?? 0;

/** MQTT 5 fields Aedes keeps on the client (absent for 3.1.1). */
interface AedesMqtt5Fields {
  sessionExpiryInterval?: number;
  receiveMaximum?: number;
  disconnectReasonCode?: number | null;
}
const v5 = (c: ClientHandle) => c as unknown as AedesMqtt5Fields;

/** The session expiry interval in force (after persistent_client_expiration's clamp), in seconds. */
export const sessionExpiryOf = (c: ClientHandle): number | undefined => v5(c).sessionExpiryInterval;

/** The receive maximum the client declared (65535 when it declared none). */
export const receiveMaximumOf = (c: ClientHandle): number | undefined => v5(c).receiveMaximum;

/** The reason code of the DISCONNECT the broker sent an MQTT 5 client (takeover 0x8E, shutdown 0x8B …), if it sent one. */
export const serverDisconnectReasonOf = (c: ClientHandle): number | undefined => v5(c).disconnectReasonCode ?? undefined;

export {
  clientDisconnectReasonOf,
  connectFactsOf,
  requestedQosOf,
  topicAliasOf,
  unsubackReasonsOf,
  userPropertyNames,
  type ConnectFacts,
} from './mqtt5-facts.js';
