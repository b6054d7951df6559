/**
 * QoS 0 PUBLISHes as one buffer, made once per message (MQTT 3.1 / 3.1.1, and MQTT 5 when the
 * delivery carries no property: then its property length is one 0 byte): mqtt-packet's
 * writeToStream writes a PUBLISH as four or five small writes (header, length, topic, payload),
 * each a Writable entry and an iovec of the socket's writev, for every subscriber. Here the packet
 * is encoded once and the same bytes go to every subscriber of a fan-out (the engine delivers one
 * message to its subscribers one after another, so one remembered encoding serves them all).
 * The bytes are what mqtt-packet writes (test/broker/publish-encoding.test.ts compares them, and
 * with Mosquitto's); anything else (QoS 1/2, MQTT 5 with properties — a subscription identifier,
 * user properties, message expiry —, large payloads) goes through mqtt-packet.
 */

export interface PublishLike {
  cmd: string;
  qos?: number;
  topic?: unknown;
  payload?: unknown;
  retain?: boolean;
  dup?: boolean;
  brokerId?: string;
  brokerCounter?: number;
  properties?: Record<string, unknown>;
}

/** True when an MQTT 5 delivery has no property to write. */
function noProperties(p: PublishLike): boolean {
  if (p.properties === undefined || p.properties === null) return true;
  for (const k in p.properties) if (p.properties[k] !== undefined) return false;
  return true;
}

/**
 * Payloads up to this size are copied behind the header; a larger one is cheaper written by
 * reference (mqtt-packet does), and a copy of it must not outlive the delivery.
 */
const MAX_COPIED = 16 * 1024;
/** The longest topic encoded here (its UTF-8 length can be 3 × this, still well inside one allocation). */
const MAX_TOPIC = 4096;

// the last message encoded: the same message to the next subscriber is the same bytes
let lastPayload: Buffer | undefined;
let lastTopic = '';
let lastFlags = -1;
let lastCounter: number | undefined;
let lastBroker: string | undefined;
let lastBytes: Buffer | undefined;
let lastV5 = false;

/**
 * The wire bytes of a QoS 0 PUBLISH for an MQTT 3.1/3.1.1 client, or an MQTT 5 client when the delivery
 * has no properties; undefined when mqtt-packet must write the packet (anything else, or a packet it
 * would refuse: its error is the one to keep).
 */
export function encodedQoS0(p: PublishLike, protocolVersion: number | undefined): Buffer | undefined {
  if (p.cmd !== 'publish' || p.qos !== 0) return undefined;
  const v5 = protocolVersion === 5;
  if (v5 && !noProperties(p)) return undefined;
  const { topic, payload } = p;
  if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC) return undefined;
  if (!Buffer.isBuffer(payload) || payload.length > MAX_COPIED) return undefined;
  const flags = (p.dup ? 8 : 0) | (p.retain ? 1 : 0);
  // only the engine's messages are remembered: their broker counter names one message, whereas a
  // client of this process (a bridge's mqtt.js) may publish one buffer again with other bytes in it
  const engine = typeof p.brokerCounter === 'number';
  if (
    engine &&
    payload === lastPayload &&
    topic === lastTopic &&
    flags === lastFlags &&
    v5 === lastV5 &&
    p.brokerCounter === lastCounter &&
    p.brokerId === lastBroker
  )
    return lastBytes;
  const topicBytes = Buffer.byteLength(topic);
  const remaining = 2 + topicBytes + (v5 ? 1 : 0) + payload.length;
  const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : 3;
  const out = Buffer.allocUnsafe(1 + lengthBytes + remaining);
  out[0] = 0x30 | flags;
  let at = 1;
  // Remaining Length: 7 bits a byte, least significant first, high bit = more follows
  for (let n = remaining; ;) {
    const digit = n & 0x7f;
    n >>>= 7;
    out[at++] = n > 0 ? digit | 0x80 : digit;
    if (n === 0) break;
  }
  out.writeUInt16BE(topicBytes, at);
  at += 2;
  at += out.write(topic, at, 'utf8');
  if (v5) out[at++] = 0; // Property Length: none
  payload.copy(out, at);
  if (!engine) return out;
  lastPayload = payload;
  lastTopic = topic;
  lastFlags = flags;
  lastV5 = v5;
  lastCounter = p.brokerCounter;
  lastBroker = p.brokerId;
  lastBytes = out;
  return out;
}
