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
 * subscriptions and queued outgoing messages.
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

export interface MosquittoMessage {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  /** How many MQTT 5 properties the message carried. */
  properties: number;
}

export interface MosquittoClientMessage extends MosquittoMessage {
  /** One of MSG_STATE. */
  state: number;
  direction: 'in' | 'out';
}

export interface MosquittoSession {
  clientId: string;
  subscriptions: { topic: string; qos: number }[];
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
  const sessions = new Map<string, { subscriptions: MosquittoSession['subscriptions']; refs: ClientMsgRef[] }>();
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
        const { clientId, topic, qos } = v56 ? readSubV56(body) : readSubV234(body);
        session(clientId).subscriptions.push({ topic, qos });
        break;
      }
      case Chunk.Client:
        session(readClientId(body, version));
        break;
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
    out.push({ clientId, subscriptions: s.subscriptions, messages });
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
  const properties = c.remaining > 0 ? readProperties(c) : 0;
  c.end('the message store chunk');
  return { storeId, expiryTime, message: { topic, payload, qos: q, retain, properties } };
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
  return { storeId, expiryTime: 0n, message: { topic, payload, qos: q, retain, properties: 0 } };
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

function readSubV56(c: Cursor) {
  c.u32('subscription identifier');
  const idLen = c.u16('client id length');
  const topicLen = c.u16('topic length');
  const q = qos(c, 'subscription qos');
  c.u8('subscription options');
  c.skip(2, 'sub padding');
  const clientId = nonEmpty(c, idLen, 'client id');
  const topic = nonEmpty(c, topicLen, 'topic filter');
  c.end('the subscription chunk');
  return { clientId, topic, qos: q };
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
  return { clientId, topic, qos: q };
}

function readClientId(c: Cursor, version: number): string {
  let clientId: string;
  if (version >= 5) {
    c.i64le('session expiry time');
    c.u32('session expiry interval');
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
  return clientId;
}

/** Value layouts of the properties a PUBLISH may carry (MQTT 5, section 3.3.2.3): a fixed size, a varint, or u16-prefixed strings. */
const PUBLISH_PROPERTIES: Record<number, number | 'varint' | { strings: number }> = {
  0x01: 1, // payload format indicator
  0x02: 4, // message expiry interval
  0x03: { strings: 1 }, // content type
  0x08: { strings: 1 }, // response topic
  0x09: { strings: 1 }, // correlation data (binary data: the same u16-prefixed layout)
  0x0b: 'varint', // subscription identifier
  0x23: 2, // topic alias
  0x26: { strings: 2 }, // user property: name and value
};

/** Walks an MQTT 5 property block (varint length, then properties) and counts the properties. */
function readProperties(c: Cursor): number {
  const len = c.varint('properties length');
  const p = c.region(len, 'properties');
  let n = 0;
  while (p.remaining > 0) {
    const at = p.offset;
    const id = p.varint('property id');
    const layout = PUBLISH_PROPERTIES[id];
    if (layout === undefined) p.fail(`property id ${id} is not a PUBLISH property`, at);
    else if (layout === 'varint') p.varint('property value');
    else if (typeof layout === 'number') p.skip(layout, 'property value');
    else for (let i = 0; i < layout.strings; i++) p.skip(p.u16('property value length'), 'property value');
    n++;
  }
  return n;
}
