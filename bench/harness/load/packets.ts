/**
 * MQTT 3.1.1 (or 5.0, for the engine evaluation in bench/engine/) packets for the load generator, encoded once with mqtt-packet before a run starts.
 * On the hot path a publish is a copy of its template with the sequence number, send time and
 * (QoS 1) packet id patched in at known offsets; received packets are only framed, never decoded.
 */
import mqttPacket from 'mqtt-packet';

/** Payload layout: publisher index (u32), sequence (u32), send time in ms from performance.now() (f64), padding. */
export const PAYLOAD_MIN_BYTES = 16;

export interface ConnectOptions {
  clientId: string;
  keepalive?: number;
  username?: string;
  password?: string;
  /** 4 (MQTT 3.1.1, the default) or 5. */
  protocolVersion?: 4 | 5;
}

export function encodeConnect(o: ConnectOptions): Buffer {
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: o.protocolVersion ?? 4,
    clean: true,
    clientId: o.clientId,
    keepalive: o.keepalive ?? 60,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: Buffer.from(o.password) } : {}),
  });
}

export function encodeSubscribe(filter: string, qos: 0 | 1, messageId = 1, protocolVersion: 4 | 5 = 4): Buffer {
  return mqttPacket.generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic: filter, qos }] }, { protocolVersion });
}

/** A PUBACK for packet id 0; patch bytes 2–3. Also valid in MQTT 5 (reason code 0 and no properties may be left out). */
export const PUBACK_TEMPLATE = mqttPacket.generate({ cmd: 'puback', messageId: 1 }).fill(0, 2);

/** A publish whose payload (and packet id at QoS 1) is patched per message. */
export class PublishTemplate {
  readonly bytes: Buffer;
  readonly payloadOffset: number;
  /** Offset of the 2-byte packet id, or -1 at QoS 0. */
  readonly idOffset: number;

  constructor(
    topic: string,
    readonly qos: 0 | 1,
    payloadBytes: number,
    readonly publisher: number,
    protocolVersion: 4 | 5 = 4,
  ) {
    if (payloadBytes < PAYLOAD_MIN_BYTES) throw new Error(`payload must be at least ${PAYLOAD_MIN_BYTES} bytes`);
    this.bytes = mqttPacket.generate(
      { cmd: 'publish', topic, payload: Buffer.alloc(payloadBytes), qos, messageId: qos ? 1 : undefined, retain: false, dup: false },
      { protocolVersion },
    );
    this.payloadOffset = this.bytes.length - payloadBytes;
    // MQTT 5 puts an (empty) property length byte between the packet id and the payload
    this.idOffset = qos ? this.payloadOffset - 2 - (protocolVersion === 5 ? 1 : 0) : -1;
    this.bytes.writeUInt32LE(publisher, this.payloadOffset);
  }

  /** Writes message `seq` (sent at `sentAt`) into `out` at `at`; returns the offset after it. */
  writeTo(out: Buffer, at: number, seq: number, sentAt: number): number {
    this.bytes.copy(out, at);
    const p = at + this.payloadOffset;
    out.writeUInt32LE(seq >>> 0, p + 4);
    out.writeDoubleLE(sentAt, p + 8);
    if (this.idOffset >= 0) out.writeUInt16BE((seq % 65535) + 1, at + this.idOffset);
    return at + this.bytes.length;
  }
}

/** What a subscriber learns from one received PUBLISH. */
export interface ReceivedPublish {
  publisher: number;
  seq: number;
  sentAt: number;
  /** Packet id (QoS > 0), else 0. */
  packetId: number;
}

/**
 * Splits a byte stream into MQTT packets (fixed header + remaining length) without decoding them;
 * a packet cut between two chunks is kept until its rest arrives.
 */
export class FrameReader {
  private rest: Buffer | undefined;

  /** `type` is the packet type (high nibble of the first byte); the body is buf[start, end). */
  constructor(private readonly onPacket: (type: number, flags: number, buf: Buffer, start: number, end: number) => void) {}

  push(chunk: Buffer): void {
    const buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    let i = 0;
    for (;;) {
      if (i + 2 > buf.length) break;
      let len = 0;
      let mul = 1;
      let j = i + 1;
      let complete = false;
      while (j < buf.length && j - i <= 4) {
        const b = buf[j++];
        len += (b & 127) * mul;
        mul *= 128;
        if ((b & 128) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (j - i > 4) throw new Error('malformed remaining length from the broker');
        break;
      }
      if (j + len > buf.length) break;
      this.onPacket(buf[i] >> 4, buf[i] & 15, buf, j, j + len);
      i = j + len;
    }
    this.rest = i < buf.length ? Buffer.from(buf.subarray(i)) : undefined;
  }
}

export const PACKET = { CONNACK: 2, PUBLISH: 3, PUBACK: 4, SUBACK: 9 } as const;

/** Reads the bench fields of a PUBLISH body (buf[start, end)) written by PublishTemplate. */
export function readPublish(flags: number, buf: Buffer, start: number, end: number, payloadBytes: number): ReceivedPublish {
  const qos = (flags >> 1) & 3;
  const topicLen = buf.readUInt16BE(start);
  const packetId = qos ? buf.readUInt16BE(start + 2 + topicLen) : 0;
  const p = end - payloadBytes;
  return { publisher: buf.readUInt32LE(p), seq: buf.readUInt32LE(p + 4), sentAt: buf.readDoubleLE(p + 8), packetId };
}
