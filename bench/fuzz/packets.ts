/**
 * Hostile MQTT byte streams for the protocol fuzzer (test/broker/fuzz.test.ts and bench/fuzz/run.ts).
 *
 * Every case starts from valid packets that mqtt-packet encodes for MQTT 3.1, 3.1.1 and 5.0 and is
 * then broken in one named way. Cases come from one seeded stream in order, so a seed and a case
 * number name the same bytes on every machine, whatever the timing of the run.
 */
import mqttPacket, { type Packet } from 'mqtt-packet';
import { Random } from '../detect/random.js';

export type Version = 3 | 4 | 5;

/** What was broken. */
export const KINDS = [
  'valid',
  'bit-flip',
  'byte-insert',
  'byte-delete',
  'truncate',
  'length-lie',
  'reserved-flags',
  'bad-utf8',
  'v5-properties',
  'before-connect',
  'second-connect',
  'garbage',
  'http',
] as const;
export type Kind = (typeof KINDS)[number];

/** How the bytes are written: one write, a few random pieces, or one byte at a time. */
export type Delivery = 'whole' | 'chunks' | 'drip';
export type Transport = 'tcp' | 'ws';

export interface FuzzCase {
  index: number;
  kind: Kind;
  version: Version;
  transport: Transport;
  delivery: Delivery;
  /** The pieces to write, in order (one WebSocket message each over ws). */
  chunks: Buffer[];
  /** `http` over ws: the bytes go to the WebSocket listener as raw TCP, before any upgrade. */
  rawHttp: boolean;
}

const PROTOCOL_ID: Record<Version, string> = { 3: 'MQIsdp', 4: 'MQTT', 5: 'MQTT' };

/** A few well-formed strings for topics and filters (kept few, so retained messages stay bounded). */
const TOPICS = ['fuzz/a', 'fuzz/b/c', 'fuzz/+/x', 'fuzz/#', '$SYS/broker/x', 'fuzz/é/😀', '/', 'fuzz//'];
const FILTERS = ['fuzz/#', 'fuzz/+/c', '#', '+', '$SYS/#', 'fuzz/a', '$share/g/fuzz/#'];

const encode = (p: Packet, version: Version) => mqttPacket.generate(p, { protocolVersion: version });

function connectPacket(r: Random, version: Version, clientId: string): Packet {
  const p: Record<string, unknown> = {
    cmd: 'connect',
    protocolId: PROTOCOL_ID[version],
    protocolVersion: version,
    clean: r.chance(0.8),
    clientId,
    keepalive: r.pick([0, 0, 1, 60, 65535]),
  };
  if (r.chance(0.4)) {
    p.will = { topic: r.pick(TOPICS.slice(0, 3)), payload: Buffer.from(r.hex(r.int(0, 40))), qos: r.int(0, 2), retain: r.chance(0.3) };
    if (version === 5)
      (p.will as Record<string, unknown>).properties = {
        willDelayInterval: r.int(0, 5),
        payloadFormatIndicator: true,
        contentType: 'text/plain',
        userProperties: { k: 'v' },
      };
  }
  if (r.chance(0.3)) {
    p.username = r.pick(['alice', 'fuzz', '']);
    if (r.chance(0.8)) p.password = Buffer.from(r.hex(r.int(0, 16)));
  }
  if (version === 5 && r.chance(0.7)) {
    p.properties = {
      sessionExpiryInterval: r.int(0, 600),
      receiveMaximum: r.int(1, 100),
      maximumPacketSize: r.int(100, 100_000),
      topicAliasMaximum: r.int(0, 10),
      requestResponseInformation: r.chance(0.5),
      userProperties: { a: 'b' },
      ...(r.chance(0.2) ? { authenticationMethod: 'SCRAM-SHA-1', authenticationData: Buffer.from('x') } : {}),
    };
  }
  return p as unknown as Packet;
}

/** Any packet a client could send after CONNECT (and a few only a server sends). */
function otherPacket(r: Random, version: Version): Packet {
  const messageId = r.int(1, 65535);
  const v5 = version === 5;
  switch (r.int(0, 13)) {
    case 0:
    case 1:
    case 2: {
      const qos = r.int(0, 2) as 0 | 1 | 2;
      const properties =
        v5 && r.chance(0.6)
          ? {
              payloadFormatIndicator: r.chance(0.5),
              messageExpiryInterval: r.int(0, 100),
              topicAlias: r.int(1, 5),
              responseTopic: 'fuzz/r',
              correlationData: Buffer.from('c'),
              userProperties: { u: ['1', '2'] },
              contentType: 'a/b',
            }
          : undefined;
      return {
        cmd: 'publish',
        topic: r.pick(TOPICS),
        payload: Buffer.from(r.hex(r.int(0, 64))),
        qos,
        retain: r.chance(0.2),
        dup: r.chance(0.1),
        messageId: qos ? messageId : undefined,
        properties,
      } as Packet;
    }
    case 3:
    case 4: {
      const subscriptions = Array.from({ length: r.int(1, 3) }, () => ({
        topic: r.pick(FILTERS),
        qos: r.int(0, 2) as 0 | 1 | 2,
        ...(v5 ? { nl: r.chance(0.5), rap: r.chance(0.5), rh: r.int(0, 2) } : {}),
      }));
      return {
        cmd: 'subscribe',
        messageId,
        subscriptions,
        properties: v5 && r.chance(0.5) ? { subscriptionIdentifier: r.int(1, 1000), userProperties: { s: 't' } } : undefined,
      } as Packet;
    }
    case 5:
      return { cmd: 'unsubscribe', messageId, unsubscriptions: [r.pick(FILTERS), r.pick(FILTERS)] } as Packet;
    case 6:
      return {
        cmd: r.pick(['puback', 'pubrec', 'pubrel', 'pubcomp'] as const),
        messageId,
        ...(v5 && r.chance(0.5) ? { reasonCode: r.pick([0, 16, 128, 146]), properties: { reasonString: 'r' } } : {}),
      } as Packet;
    case 7:
    case 8:
      return { cmd: 'pingreq' } as Packet;
    case 9:
      return { cmd: 'disconnect', ...(v5 ? { reasonCode: r.pick([0, 4, 129]), properties: { sessionExpiryInterval: 0 } } : {}) } as Packet;
    case 10:
      // AUTH exists in 5.0 only; in 3.1.1 its type (15) is reserved
      return { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'm', authenticationData: Buffer.from('d') } } as Packet;
    case 11:
      return { cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: false } as Packet;
    case 12:
      return { cmd: 'suback', messageId, granted: [0, 1, 128] } as Packet;
    default:
      return { cmd: 'pingresp' } as Packet;
  }
}

/** Encodes a packet; AUTH is generated as 5.0 whatever the session version (that is the hostile part). */
function encodeAny(p: Packet, version: Version): Buffer {
  return encode(p, p.cmd === 'auth' ? 5 : version);
}

export function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

/** The offset where the body starts (after the type byte and the remaining length), or -1. */
function bodyOffset(packet: Buffer): number {
  for (let i = 1; i < Math.min(packet.length, 5); i++) if ((packet[i] & 0x80) === 0) return i + 1;
  return -1;
}

const str = (s: string | Buffer) => {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};

const framed = (typeByte: number, body: Buffer) => Buffer.concat([Buffer.from([typeByte]), varint(body.length), body]);

/** Property sections that 5.0 forbids: unknown ids, repeats, topic alias 0, lengths that lie. */
function badProperties(r: Random): Buffer {
  const fromParts = (props: number[]) => Buffer.concat([varint(props.length), Buffer.from(props)]);
  switch (r.int(0, 6)) {
    case 0:
      return fromParts([r.pick([0x00, 0x04, 0x05, 0x10, 0x7f, 0xff]), 0x01, 0x02, 0x03]);
    case 1:
      return fromParts([0x01, 0x01, 0x01, 0x00]); // payload format indicator twice
    case 2:
      return fromParts([0x23, 0x00, 0x00]); // topic alias 0
    case 3:
      return Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0x7f]), Buffer.from([0x01, 0x01])]); // 268 MB of properties promised
    case 4:
      return Buffer.concat([varint(r.int(5, 40)), Buffer.from([0x26, 0x00, 0x01])]); // longer than what follows
    case 5:
      return fromParts([0x0b, 0x00]); // subscription identifier 0
    default:
      return fromParts([0x26, 0x00, 0x05, 0x61]); // user property whose string runs past the section
  }
}

/** A 5.0 CONNECT or PUBLISH assembled by hand around a hostile property section. */
function v5WithProperties(r: Random, clientId: string): Buffer[] {
  const props = badProperties(r);
  const connect = framed(0x10, Buffer.concat([str('MQTT'), Buffer.from([5, 0x02, 0, 30]), props, str(clientId)]));
  if (r.chance(0.5)) return [connect];
  const goodConnect = encode(connectPacket(r, 5, clientId), 5);
  const publish = framed(0x32, Buffer.concat([str('fuzz/a'), Buffer.from([0, 1]), props, Buffer.from('payload')]));
  return [goodConnect, publish];
}

/** Byte sequences that are not valid UTF-8 in an MQTT string, or are U+0000. */
const BAD_UTF8 = [
  [0xc3, 0x28],
  [0xed, 0xa0, 0x80],
  [0xc0, 0x80],
  [0x00],
  [0xff],
  [0xf4, 0x90, 0x80, 0x80],
  [0xe2, 0x82],
  [0xef, 0xbf, 0xbf],
];

/**
 * A packet where one string field carries bytes that are not UTF-8: encoded with a placeholder of the
 * same byte length, which is then overwritten (the length prefix stays right).
 */
function badUtf8(r: Random, version: Version, clientId: string): Buffer[] {
  const bad = Buffer.from(r.pick(BAD_UTF8));
  const mark = 'Q'.repeat(bad.length);
  const text = `ab${mark}cd`;
  const connect = connectPacket(r, version, clientId) as Record<string, unknown> & Packet;
  let target: Packet;
  switch (r.int(0, 4)) {
    case 0:
      connect.clientId = `${clientId}${text}`;
      target = connect;
      break;
    case 1:
      connect.username = text;
      target = connect;
      break;
    case 2:
      connect.will = { topic: text, payload: Buffer.from('w'), qos: 0, retain: false };
      target = connect;
      break;
    case 3:
      target = {
        cmd: 'publish',
        topic: `fuzz/${text}`,
        payload: Buffer.from('p'),
        qos: 1,
        messageId: 7,
        retain: false,
        dup: false,
      } as Packet;
      break;
    default:
      target = { cmd: 'subscribe', messageId: 9, subscriptions: [{ topic: `fuzz/${text}`, qos: 1 }] } as Packet;
  }
  const bytes = encode(target, version);
  const at = bytes.indexOf(`ab${mark}cd`);
  bad.copy(bytes, at + 2);
  return target === connect ? [bytes] : [encode(connect, version), bytes];
}

/** A remaining-length field that lies: too long, too short, 5 bytes, 0xFFFFFFFF, not minimal. */
function lieAboutLength(r: Random, packet: Buffer): Buffer {
  const start = bodyOffset(packet);
  const body = packet.subarray(start);
  let length: Buffer;
  switch (r.int(0, 5)) {
    case 0:
      length = varint(body.length + r.int(1, 200));
      break;
    case 1:
      length = varint(Math.max(0, body.length - r.int(1, Math.max(1, body.length))));
      break;
    case 2:
      length = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x01]);
      break;
    case 3:
      length = Buffer.from([0xff, 0xff, 0xff, 0xff]);
      break;
    case 4:
      length = Buffer.from([0xff, 0xff, 0xff, 0x7f]);
      break;
    default:
      length = Buffer.from(varint(body.length));
      length[length.length - 1] |= 0x80;
      length = Buffer.concat([length, Buffer.from([0x00])]); // one more, zero, continuation byte
  }
  return Buffer.concat([packet.subarray(0, 1), length, body]);
}

/** Flags the spec fixes or reserves: fixed-header nibbles, QoS 3, the CONNECT reserved bit, types 0 and 15. */
function breakFlags(r: Random, packet: Buffer): Buffer {
  const out = Buffer.from(packet);
  const type = out[0] >> 4;
  switch (r.int(0, 3)) {
    case 0:
      out[0] = (type << 4) | (r.int(1, 15) ^ (out[0] & 0x0f) || 1);
      break;
    case 1:
      out[0] = (out[0] & 0xf0) | 0x06 | (out[0] & 0x09); // QoS 3 (or a reserved nibble outside PUBLISH)
      break;
    case 2:
      if (type === 1) {
        const body = bodyOffset(out);
        out[body + 2 + out.readUInt16BE(body) + 1] |= 0x01; // CONNECT flags (after name and level): bit 0 is reserved
      } else out[0] = (r.pick([0, 15]) << 4) | (out[0] & 0x0f);
      break;
    default:
      out[0] = (r.pick([0, 15]) << 4) | (out[0] & 0x0f);
  }
  return out;
}

const HTTP_REQUESTS = [
  'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
  'GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n',
  'GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 99\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n',
  'POST /mqtt HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nabc',
  'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
  `GET /${'a'.repeat(20_000)} HTTP/1.1\r\n\r\n`,
  'GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nzz\r\n',
  '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03', // the start of a TLS ClientHello
];

function mutated(r: Random, kind: Kind, packets: Buffer[]): Buffer[] {
  const i = r.int(0, packets.length - 1);
  const p = Buffer.from(packets[i]);
  switch (kind) {
    case 'bit-flip':
      for (let n = r.int(1, 8); n > 0; n--) p[r.int(0, p.length - 1)] ^= 1 << r.int(0, 7);
      packets[i] = p;
      break;
    case 'byte-insert': {
      const at = r.int(0, p.length);
      packets[i] = Buffer.concat([
        p.subarray(0, at),
        Buffer.from(Array.from({ length: r.int(1, 8) }, () => r.int(0, 255))),
        p.subarray(at),
      ]);
      break;
    }
    case 'byte-delete': {
      const at = r.int(0, p.length - 1);
      packets[i] = Buffer.concat([p.subarray(0, at), p.subarray(at + r.int(1, Math.min(8, p.length - at)))]);
      break;
    }
    case 'truncate':
      // the cut may fall on any boundary, including none of the packet and all but its last byte
      packets[i] = p.subarray(0, r.int(0, p.length - 1));
      packets.length = i + 1;
      break;
    case 'length-lie':
      packets[i] = lieAboutLength(r, p);
      break;
    case 'reserved-flags':
      packets[i] = breakFlags(r, p);
      break;
  }
  return packets;
}

function garbage(r: Random): Buffer {
  return Buffer.from(Array.from({ length: r.int(1, 512) }, () => r.int(0, 255)));
}

/** Splits a stream into 2–6 pieces at random offsets. */
function split(r: Random, bytes: Buffer): Buffer[] {
  const cuts = Array.from({ length: r.int(1, 5) }, () => r.int(1, Math.max(1, bytes.length - 1))).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of cuts) {
    if (c > from) out.push(bytes.subarray(from, c));
    from = Math.max(from, c);
  }
  out.push(bytes.subarray(from));
  return out.filter((b) => b.length > 0);
}

/** The streams of one case, before delivery is chosen. */
function streamOf(r: Random, kind: Kind, version: Version, clientId: string): Buffer[] {
  const connect = () => encode(connectPacket(r, version, clientId), version);
  const session = () => [connect(), ...Array.from({ length: r.int(1, 4) }, () => encodeAny(otherPacket(r, version), version))];
  switch (kind) {
    case 'valid':
      return session();
    case 'bad-utf8':
      return badUtf8(r, version, clientId);
    case 'v5-properties':
      return v5WithProperties(r, clientId);
    case 'before-connect':
      return [encodeAny(otherPacket(r, version), version), ...(r.chance(0.5) ? [connect()] : [])];
    case 'second-connect':
      return [connect(), ...(r.chance(0.5) ? [encodeAny(otherPacket(r, version), version)] : []), connect()];
    case 'garbage':
      return r.chance(0.5) ? [garbage(r)] : [connect(), garbage(r)];
    case 'http':
      return [Buffer.from(r.pick(HTTP_REQUESTS), 'latin1')];
    default:
      return mutated(r, kind, session());
  }
}

/** The cases for a seed, in order; the same seed gives the same bytes. */
export function* fuzzCases(seed: number, count: number): Generator<FuzzCase> {
  const r = new Random(seed);
  for (let index = 0; index < count; index++) {
    const kind = r.pick(KINDS);
    const version = kind === 'v5-properties' ? 5 : r.pick([3, 4, 4, 5] as const);
    const transport: Transport = r.chance(0.7) ? 'tcp' : 'ws';
    const clientId = `fz${seed.toString(36)}-${index}`;
    const stream = streamOf(r, kind, version, clientId);
    // half the sessions say goodbye, so a still-valid case ends at the broker rather than at the fuzzer's timeout
    if (kind !== 'http' && r.chance(0.5)) stream.push(encode({ cmd: 'disconnect' } as Packet, version));
    const bytes = Buffer.concat(stream);
    const d = r.next();
    const delivery: Delivery = d < 0.05 && bytes.length <= 300 ? 'drip' : d < 0.3 ? 'chunks' : 'whole';
    const chunks = delivery === 'drip' ? [...bytes].map((b) => Buffer.from([b])) : delivery === 'chunks' ? split(r, bytes) : [bytes];
    yield { index, kind, version, transport, delivery, chunks, rawHttp: kind === 'http' && transport === 'ws' };
  }
}
