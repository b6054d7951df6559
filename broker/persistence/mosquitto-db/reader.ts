import { Cursor } from './cursor.js';

/**
 * Reader for Mosquitto's persistence file (`mosquitto.db`), format versions 2 to 6 (version 6 is
 * written by Mosquitto 2.0 and 2.1, 5 by 1.6, 4 by 1.5.6-1.5.x, 3 by 1.4-1.5.5). Layout, as Mosquitto's
 * src/persist*.c read and write it:
 *
 *   header: 15-byte magic, 4-byte crc (always 0, never checked by Mosquitto), u32 BE db version
 *   chunks: v5/v6 `u32 BE type, u32 BE length` then the body; v2-v4 `u16 BE type, u32 BE length`
 *     1 CFG         last db id, shutdown flag, size of a db id (must be 8)
 *     2 MSG_STORE   one stored message: store id, expiry time, topic, payload, source, v5 properties
 *     3 CLIENT_MSG  one message in a client's queue: store id, client id, mid, qos, state, direction
 *     4 RETAIN      the store id of one retained message
 *     5 SUB         one subscription: client id, topic filter, qos, options
 *     6 CLIENT      one persistent session: client id, last mid, session expiry
 *
 * 16- and 32-bit fields are big-endian; 64-bit ones (store ids, times) are the writer's native
 * order, little-endian here. The file has no checksum: structural damage (lengths, types, counts,
 * references, strings) is detected, a changed payload byte cannot be.
 *
 * The result is plain records, engine-neutral: retained messages and client sessions with their
 * subscriptions and queued outgoing messages, with what MQTT 5 adds to each (message properties and
 * expiry time, session expiry, subscription options and identifiers). The file does not record a
 * client's protocol version.
 */

export const MOSQUITTO_DB_MAGIC = Buffer.from([0x00, 0xb5, 0x00, ...Buffer.from('mosquitto db')]);
const HEADER_SIZE = MOSQUITTO_DB_MAGIC.length + 4 + 4;
const SUPPORTED_VERSIONS = [2, 3, 4, 5, 6];

const Chunk = { Cfg: 1, MsgStore: 2, ClientMsg: 3, Retain: 4, Sub: 5, Client: 6 } as const;

/** Mosquitto's `enum mosquitto_msg_state`, the states an outgoing message can be saved in. */
export const MSG_STATE = {
  publishQos0: 1,
  publishQos1: 2,
  waitForPuback: 3,
  publishQos2: 4,
  waitForPubrec: 5,
  resendPubrel: 6,
  waitForPubrel: 7,
  resendPubcomp: 8,
  waitForPubcomp: 9,
  sendPubrec: 10,
  queued: 11,
} as const;
const DIRECTION_OUT = 1;

/** The MQTT 5 properties Mosquitto stores with a message, in mqtt-packet's names and shapes. */
export interface MessageProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: Record<string, string | string[]>;
}

export interface MosquittoMessage {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  properties: MessageProperties;
  /** When its Message Expiry Interval ends, in seconds since the epoch (the file's `expiry_time`). */
  expiryTime?: number;
}

export interface MosquittoClientMessage extends MosquittoMessage {
  /** One of MSG_STATE. */
  state: number;
  direction: 'in' | 'out';
}

export interface MosquittoSubscription {
  topic: string;
  qos: number;
  /** MQTT 5 subscription identifier, 0 when none. */
  identifier: number;
  noLocal: boolean;
  retainAsPublished: boolean;
}

export interface MosquittoSession {
  clientId: string;
  /**
   * Session Expiry Interval (s; 0xFFFFFFFF never) and when the session expires (s since the epoch; 0
   * when its client was connected as the file was written). Versions 2-4 have neither.
   */
  expiry?: { interval: number; time: number };
  subscriptions: MosquittoSubscription[];
  /** Messages for and from the client in the order Mosquitto keeps them: in flight, then queued. */
  messages: MosquittoClientMessage[];
}

export interface MosquittoDb {
  version: number;
  retained: MosquittoMessage[];
  sessions: MosquittoSession[];
  /** Messages past their MQTT 5 expiry time, left out as Mosquitto leaves them out on restore. */
  expired: number;
}

/** True when the bytes begin with Mosquitto's magic (a file Mosquitto wrote, whole or not). */
export function hasMosquittoMagic(head: Buffer): boolean {
  return head.length >= MOSQUITTO_DB_MAGIC.length && head.subarray(0, MOSQUITTO_DB_MAGIC.length).equals(MOSQUITTO_DB_MAGIC);
}

interface ClientMsgRef {
  storeId: bigint;
  qos: number;
  state: number;
  retain: boolean;
  direction: 'in' | 'out';
  at: number;
}

/** Parses a whole Mosquitto persistence file; throws MosquittoDbError naming `file` and the offset. */
export function readMosquittoDb(data: Buffer, file: string, nowSeconds = Math.floor(Date.now() / 1000)): MosquittoDb {
  const c = new Cursor(data, file, 0);
  if (data.length === 0) c.fail('the file is empty');
  if (!hasMosquittoMagic(data)) c.fail('wrong magic: not a Mosquitto persistence file');
  c.skip(MOSQUITTO_DB_MAGIC.length + 4, 'header');
  const version = c.u32('db version');
  if (!SUPPORTED_VERSIONS.includes(version))
    c.fail(`unsupported db version ${version} (supported: ${SUPPORTED_VERSIONS.join(', ')})`, HEADER_SIZE - 4);

  const stores = new Map<bigint, MosquittoMessage>();
  const expired = new Set<bigint>();
  const retainRefs: { storeId: bigint; at: number }[] = [];
  const sessions = new Map<string, { expiry?: MosquittoSession['expiry']; subscriptions: MosquittoSubscription[]; refs: ClientMsgRef[] }>();
  const session = (clientId: string) => {
    let s = sessions.get(clientId);
    if (!s) sessions.set(clientId, (s = { subscriptions: [], refs: [] }));
    return s;
  };
  const v56 = version >= 5;

  while (c.remaining > 0) {
    const at = c.offset;
    const type = v56 ? c.u32('chunk type') : c.u16('chunk type');
    const length = c.u32('chunk length');
    if (length > c.remaining) c.fail(`chunk of type ${type} claims ${length} bytes, only ${c.remaining} left in the file`, at);
    const body = c.region(length, `chunk of type ${type}`);
    switch (type) {
      case Chunk.Cfg:
        readCfg(body, v56);
        break;
      case Chunk.MsgStore: {
        const { storeId, expiryTime, message } = v56 ? readMsgStoreV56(body) : readMsgStoreV234(body, version);
        if (stores.has(storeId) || expired.has(storeId)) body.fail(`message store id ${storeId} appears twice`, at);
        if (expiryTime > 0n && expiryTime - BigInt(nowSeconds) < 0n) expired.add(storeId);
        else stores.set(storeId, message);
        break;
      }
      case Chunk.ClientMsg: {
        const { clientId, ref } = v56 ? readClientMsgV56(body, at) : readClientMsgV234(body, at);
        session(clientId).refs.push(ref);
        break;
      }
      case Chunk.Retain:
        retainRefs.push({ storeId: body.u64le('retained store id'), at });
        body.end('the retain chunk');
        break;
      case Chunk.Sub: {
        const { clientId, ...sub } = v56 ? readSubV56(body) : readSubV234(body);
        session(clientId).subscriptions.push(sub);
        break;
      }
      case Chunk.Client: {
        const { clientId, expiry } = readClient(body, version);
        session(clientId).expiry = expiry;
        break;
      }
      default:
        c.fail(`unknown chunk type ${type}`, at);
    }
  }

  const resolve = (storeId: bigint, at: number, what: string) => {
    const m = stores.get(storeId);
    if (!m && !expired.has(storeId)) c.fail(`${what} refers to message store id ${storeId}, which is not in the file`, at);
    return m;
  };
  const retained: MosquittoMessage[] = [];
  for (const r of retainRefs) {
    const m = resolve(r.storeId, r.at, 'a retain chunk');
    if (m) retained.push({ ...m, retain: true });
  }
  const out: MosquittoSession[] = [];
  for (const [clientId, s] of sessions) {
    const messages: MosquittoClientMessage[] = [];
    for (const r of s.refs) {
      const m = resolve(r.storeId, r.at, `a queued message of client ${clientId}`);
      if (m) messages.push({ ...m, qos: r.qos, retain: r.retain, state: r.state, direction: r.direction });
    }
    out.push({ clientId, ...(s.expiry && { expiry: s.expiry }), subscriptions: s.subscriptions, messages });
  }
  return { version, retained, sessions: out, expired: expired.size };
}

function readCfg(c: Cursor, v56: boolean): void {
  let dbidSize: number;
  if (v56) {
    c.u64le('last db id');
    c.u8('shutdown flag');
    dbidSize = c.u8('db id size');
    c.skip(6, 'cfg padding');
  } else {
    c.u8('shutdown flag');
    dbidSize = c.u8('db id size');
    c.u64le('last db id');
  }
  if (dbidSize !== 8) c.fail(`db id size is ${dbidSize} bytes, expected 8`);
  c.end('the cfg chunk');
}

function qos(c: Cursor, what: string): number {
  const at = c.offset;
  const q = c.u8(what);
  if (q > 2) c.fail(`${what} is ${q}, expected 0, 1 or 2`, at);
  return q;
}

function flag(c: Cursor, what: string): boolean {
  const at = c.offset;
  const f = c.u8(what);
  if (f > 1) c.fail(`${what} is ${f}, expected 0 or 1`, at);
  return f === 1;
}

function nonEmpty(c: Cursor, len: number, what: string): string {
  if (len === 0) c.fail(`${what} is empty`);
  return c.string(len, what);
}

/** v2-v4 strings carry their own u16 length. */
function prefixedString(c: Cursor, what: string): string {
  return c.string(c.u16(`${what} length`), what);
}

function readMsgStoreV56(c: Cursor) {
  const storeId = c.u64le('store id');
  const expiryTime = c.i64le('expiry time');
  const payloadLen = c.u32('payload length');
  c.u16('source mid');
  const sourceIdLen = c.u16('source id length');
  const sourceUserLen = c.u16('source username length');
  const topicLen = c.u16('topic length');
  c.u16('source port');
  const q = qos(c, 'message qos');
  const retain = flag(c, 'retain flag');
  c.string(sourceIdLen, 'source client id');
  c.string(sourceUserLen, 'source username');
  const topic = nonEmpty(c, topicLen, 'topic');
  const payload = Buffer.from(c.bytes(payloadLen, 'payload'));
  const properties = c.remaining > 0 ? readProperties(c) : {};
  c.end('the message store chunk');
  const message: MosquittoMessage = { topic, payload, qos: q, retain, properties };
  if (expiryTime > 0n) message.expiryTime = Number(expiryTime);
  return { storeId, expiryTime, message };
}

function readMsgStoreV234(c: Cursor, version: number) {
  const storeId = c.u64le('store id');
  prefixedString(c, 'source client id');
  if (version === 4) {
    prefixedString(c, 'source username');
    c.u16('source port');
  }
  c.u16('source mid');
  c.u16('mid');
  const topicAt = c.offset;
  const topic = prefixedString(c, 'topic');
  if (!topic) c.fail('topic is empty', topicAt);
  const q = qos(c, 'message qos');
  const retain = flag(c, 'retain flag');
  const payload = Buffer.from(c.bytes(c.u32('payload length'), 'payload'));
  c.end('the message store chunk');
  return { storeId, expiryTime: 0n, message: { topic, payload, qos: q, retain, properties: {} } };
}

function direction(c: Cursor): 'in' | 'out' {
  const at = c.offset;
  const d = c.u8('direction');
  if (d > 1) c.fail(`direction is ${d}, expected 0 (in) or 1 (out)`, at);
  return d === DIRECTION_OUT ? 'out' : 'in';
}

function state(c: Cursor): number {
  const at = c.offset;
  const s = c.u8('message state');
  if (s < MSG_STATE.publishQos0 || s > MSG_STATE.queued) c.fail(`message state is ${s}, expected 1 to 11`, at);
  return s;
}

function readClientMsgV56(c: Cursor, at: number) {
  const storeId = c.u64le('store id');
  c.u16('mid'); // the packet id Mosquitto used; the broker assigns its own on delivery
  const idLen = c.u16('client id length');
  const q = qos(c, 'client message qos');
  const s = state(c);
  const retainDup = c.u8('retain/dup flags');
  const dir = direction(c);
  const clientId = nonEmpty(c, idLen, 'client id');
  // the per-delivery properties (subscription identifiers) come from the client's subscriptions again
  if (c.remaining > 0) readProperties(c);
  c.end('the client message chunk');
  return { clientId, ref: { storeId, qos: q, state: s, retain: (retainDup & 0xf0) !== 0, direction: dir, at } };
}

function readClientMsgV234(c: Cursor, at: number) {
  const idAt = c.offset;
  const clientId = prefixedString(c, 'client id');
  if (!clientId) c.fail('client id is empty', idAt);
  const storeId = c.u64le('store id');
  c.u16('mid');
  const q = qos(c, 'client message qos');
  const retain = flag(c, 'retain flag');
  const dir = direction(c);
  const s = state(c);
  c.u8('dup flag');
  c.end('the client message chunk');
  return { clientId, ref: { storeId, qos: q, state: s, retain, direction: dir, at } };
}

/** Mosquitto keeps these two bits of the SUBSCRIBE options byte (retain handling only matters at SUBSCRIBE). */
const SUB_OPTION = { noLocal: 0x04, retainAsPublished: 0x08 } as const;
const SUBSCRIPTION_IDENTIFIER_MAX = 268_435_455;

function readSubV56(c: Cursor) {
  const idAt = c.offset;
  const identifier = c.u32('subscription identifier');
  if (identifier > SUBSCRIPTION_IDENTIFIER_MAX)
    c.fail(`subscription identifier is ${identifier}, more than ${SUBSCRIPTION_IDENTIFIER_MAX}`, idAt);
  const idLen = c.u16('client id length');
  const topicLen = c.u16('topic length');
  const q = qos(c, 'subscription qos');
  const optAt = c.offset;
  const options = c.u8('subscription options');
  if (options & ~(SUB_OPTION.noLocal | SUB_OPTION.retainAsPublished))
    c.fail(`subscription options are 0x${options.toString(16)}, expected only bits 0x0c`, optAt);
  c.skip(2, 'sub padding');
  const clientId = nonEmpty(c, idLen, 'client id');
  const topic = nonEmpty(c, topicLen, 'topic filter');
  c.end('the subscription chunk');
  const noLocal = (options & SUB_OPTION.noLocal) !== 0;
  return { clientId, topic, qos: q, identifier, noLocal, retainAsPublished: (options & SUB_OPTION.retainAsPublished) !== 0 };
}

function readSubV234(c: Cursor) {
  const idAt = c.offset;
  const clientId = prefixedString(c, 'client id');
  if (!clientId) c.fail('client id is empty', idAt);
  const topicAt = c.offset;
  const topic = prefixedString(c, 'topic filter');
  if (!topic) c.fail('topic filter is empty', topicAt);
  const q = qos(c, 'subscription qos');
  c.end('the subscription chunk');
  return { clientId, topic, qos: q, identifier: 0, noLocal: false, retainAsPublished: false };
}

function readClient(c: Cursor, version: number): { clientId: string; expiry?: MosquittoSession['expiry'] } {
  let clientId: string;
  let expiry: MosquittoSession['expiry'];
  if (version >= 5) {
    const timeAt = c.offset;
    const time = c.i64le('session expiry time');
    if (time < 0n || time > BigInt(Number.MAX_SAFE_INTEGER)) c.fail(`session expiry time ${time} is not a time`, timeAt);
    expiry = { time: Number(time), interval: c.u32('session expiry interval') };
    c.u16('last mid');
    const idLen = c.u16('client id length');
    let userLen = 0;
    if (version === 6) {
      c.u16('listener port');
      userLen = c.u16('username length');
      c.skip(4, 'client padding');
    }
    clientId = nonEmpty(c, idLen, 'client id');
    c.string(userLen, 'username');
  } else {
    const idAt = c.offset;
    clientId = prefixedString(c, 'client id');
    if (!clientId) c.fail('client id is empty', idAt);
    c.u16('last mid');
    if (version !== 2) c.i64le('disconnect time');
  }
  c.end('the client chunk');
  return { clientId, ...(expiry && { expiry }) };
}

const PROPERTY = {
  payloadFormatIndicator: 0x01,
  messageExpiryInterval: 0x02,
  contentType: 0x03,
  responseTopic: 0x08,
  correlationData: 0x09,
  subscriptionIdentifier: 0x0b,
  topicAlias: 0x23,
  userProperty: 0x26,
} as const;

/**
 * Reads an MQTT 5 property block of a PUBLISH (varint length, then properties; MQTT 5 section 3.3.2.3)
 * into the properties a stored message keeps. The expiry is the chunk's own field; subscription
 * identifiers and topic aliases belong to one delivery and are read over.
 */
function readProperties(c: Cursor): MessageProperties {
  const len = c.varint('properties length');
  const p = c.region(len, 'properties');
  const out: MessageProperties = {};
  const text = (what: string) => p.string(p.u16(`${what} length`), what);
  const once = (name: keyof MessageProperties, at: number) => {
    if (out[name] !== undefined) p.fail(`property ${name} appears twice`, at);
  };
  while (p.remaining > 0) {
    const at = p.offset;
    const id = p.varint('property id');
    switch (id) {
      case PROPERTY.payloadFormatIndicator: {
        once('payloadFormatIndicator', at);
        out.payloadFormatIndicator = flag(p, 'payload format indicator');
        break;
      }
      case PROPERTY.messageExpiryInterval:
        p.u32('message expiry interval');
        break;
      case PROPERTY.contentType:
        once('contentType', at);
        out.contentType = text('content type');
        break;
      case PROPERTY.responseTopic:
        once('responseTopic', at);
        out.responseTopic = text('response topic');
        break;
      case PROPERTY.correlationData:
        once('correlationData', at);
        out.correlationData = Buffer.from(p.bytes(p.u16('correlation data length'), 'correlation data'));
        break;
      case PROPERTY.subscriptionIdentifier:
        p.varint('subscription identifier');
        break;
      case PROPERTY.topicAlias:
        p.u16('topic alias');
        break;
      case PROPERTY.userProperty: {
        const name = text('user property name');
        const value = text('user property value');
        const user = (out.userProperties ??= Object.create(null) as Record<string, string | string[]>);
        const had = user[name];
        user[name] = had === undefined ? value : [...(Array.isArray(had) ? had : [had]), value];
        break;
      }
      default:
        p.fail(`property id ${id} is not a PUBLISH property`, at);
    }
  }
  return out;
}
