import mqttPacket from 'mqtt-packet';
import { shown } from './session-expiry.js';
import type { StoredPacket, StoredSubscription } from 'aedes-persistence/asyncPersistence.js';

/** A stored message in the snapshot file (JSON). */
export interface SnapshotPacket {
  topic: string;
  payload: string; // base64
  qos: number;
  retain: boolean;
  /** MQTT 5 PUBLISH properties; correlationData as base64. */
  properties?: Record<string, unknown>;
  /** When its Message Expiry Interval ends (ms since the epoch): the engine sends what remains of it, or drops it. */
  messageExpiry?: number;
}

/** The PUBLISH properties a stored message keeps (the others belong to one delivery: alias, identifiers). */
const KEPT_PROPERTIES = new Set([
  'payloadFormatIndicator',
  'messageExpiryInterval',
  'contentType',
  'responseTopic',
  'correlationData',
  'userProperties',
]);

export function toSnap(p: StoredPacket): SnapshotPacket {
  const out: SnapshotPacket = { topic: p.topic, payload: Buffer.from(p.payload).toString('base64'), qos: p.qos, retain: p.retain };
  if (p.properties) {
    const props: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(p.properties)) {
      if (!KEPT_PROPERTIES.has(k) || v === undefined) continue;
      props[k] = k === 'correlationData' ? Buffer.from(v as Buffer).toString('base64') : v;
    }
    if (Object.keys(props).length) out.properties = props;
  }
  if (p.messageExpiry !== undefined) out.messageExpiry = p.messageExpiry;
  return out;
}

/**
 * A stored message read back from a snapshot, or why it cannot be one: everything in it goes to a
 * client on the wire, so it must be what mqtt-packet writes (checked by writing it, payload aside).
 */
export function fromSnap(p: SnapshotPacket): StoredPacket | string {
  if (typeof p !== 'object' || p === null) return 'not an object';
  if (typeof p.topic !== 'string' || !p.topic || /[+#\0]/.test(p.topic)) return `topic ${shown(p.topic)} is not a topic name`;
  if (typeof p.payload !== 'string') return 'payload is not base64 text';
  if (![0, 1, 2].includes(p.qos) || typeof p.retain !== 'boolean') return 'qos or retain out of range';
  if (p.messageExpiry !== undefined && (!Number.isSafeInteger(p.messageExpiry) || p.messageExpiry < 0))
    return `messageExpiry ${shown(p.messageExpiry)} is not a time in ms`;
  let properties: Record<string, unknown> | undefined;
  if (p.properties !== undefined) {
    if (typeof p.properties !== 'object' || p.properties === null || Array.isArray(p.properties)) return 'properties is not an object';
    const unknown = Object.keys(p.properties).find((k) => !KEPT_PROPERTIES.has(k));
    if (unknown) return `property ${unknown.slice(0, 40)} is not one a stored message keeps`;
    properties = { ...p.properties };
    if (properties.correlationData !== undefined) {
      if (typeof properties.correlationData !== 'string') return 'correlationData is not base64 text';
      properties.correlationData = Buffer.from(properties.correlationData, 'base64');
    }
  }
  const packet: StoredPacket = {
    cmd: 'publish',
    topic: p.topic,
    payload: Buffer.from(p.payload, 'base64'),
    qos: p.qos,
    retain: p.retain,
    dup: false,
  };
  if (properties) {
    try {
      const probe = { cmd: 'publish', topic: p.topic, payload: Buffer.alloc(0), qos: 1, messageId: 1, properties } as const;
      mqttPacket.generate(probe as mqttPacket.IPublishPacket, { protocolVersion: 5 });
    } catch (err) {
      return (err as Error).message.slice(0, 80);
    }
    packet.properties = properties;
  }
  if (p.messageExpiry !== undefined) packet.messageExpiry = p.messageExpiry;
  return packet;
}

const SUBSCRIPTION_IDENTIFIER_MAX = 268_435_455;

/** A stored subscription read back from a snapshot, or why it cannot be one. */
export function checkSubscription(s: StoredSubscription): string | undefined {
  if (typeof s !== 'object' || s === null) return 'not an object';
  if (typeof s.topic !== 'string' || !s.topic) return `topic filter ${shown(s.topic)} is not a string`;
  if (![0, 1, 2].includes(s.qos)) return `qos ${shown(s.qos)} out of range`;
  if (s.rh !== undefined && ![0, 1, 2].includes(s.rh)) return `retain handling ${shown(s.rh)} out of range`;
  if ((s.rap !== undefined && typeof s.rap !== 'boolean') || (s.nl !== undefined && typeof s.nl !== 'boolean'))
    return 'retain as published or no local is not true/false';
  const id = s.subscriptionIdentifier;
  if (id !== undefined && (!Number.isInteger(id) || id < 1 || id > SUBSCRIPTION_IDENTIFIER_MAX))
    return `subscription identifier ${shown(id)} is not 1..${SUBSCRIPTION_IDENTIFIER_MAX}`;
  return undefined;
}
