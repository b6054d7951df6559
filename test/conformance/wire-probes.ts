/** Small building blocks of the conformance probes: hand-made packets and readings of what a broker sent. */
import mqttPacket, { type Packet } from 'mqtt-packet';
import type { WireClient, Received } from '../engine/wire.js';
import type { Target } from './statements.js';

/** A packet from its first byte and body, with the remaining length encoded as MQTT's variable byte integer. */
export function packet(first: number, ...body: (number[] | Buffer)[]): Buffer {
  const payload = Buffer.concat(body.map((b) => Buffer.from(b)));
  const len: number[] = [];
  let n = payload.length;
  do {
    len.push((n % 128) | (n >= 128 ? 0x80 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return Buffer.concat([Buffer.from([first, ...len]), payload]);
}

/** A length-prefixed MQTT string (any bytes, so that ill-formed ones can be sent). */
export function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

/**
 * A CONNECT written by hand: protocol name, level, connect flags as given (so reserved and contradictory
 * flags can be sent), keepalive 30, then the payload fields. MQTT 5 gets empty property lists.
 */
export function rawConnect(o: { name?: string; level?: number; flags: number; clientId: string; rest?: (number[] | Buffer)[] }): Buffer {
  const level = o.level ?? 4;
  const props = level === 5 ? [[0]] : [];
  return packet(0x10, str(o.name ?? 'MQTT'), [level, o.flags, 0, 30], ...props, str(o.clientId), ...(o.rest ?? []));
}

/** An empty property list where the target speaks MQTT 5 (spread into `packet`). */
export const props = (b: Target): number[][] => (b.version === 5 ? [[0]] : []);

/** CONNECT fields of a session that outlives its connection: clean session 0 (MQTT 5: Clean Start 0 and a session expiry). */
export const keep = (b: Target) => ({ clean: false, ...(b.version === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}) });

/** Packets encoded for the target's protocol version, to be written in one piece (so the broker reads them together). */
export const together = (b: Target, ...packets: Record<string, unknown>[]) =>
  Buffer.concat(packets.map((p) => mqttPacket.generate(p as unknown as Packet, { protocolVersion: b.version })));

/** A hand-made CONNECT (rawConnect, at the target's protocol level unless `level` says otherwise) on a new socket. */
export async function sendConnect(
  b: Target,
  o: Omit<Parameters<typeof rawConnect>[0], 'level'> & { level?: number },
  after?: Buffer,
): Promise<WireClient> {
  const c = await b.open();
  c.raw(Buffer.concat([rawConnect({ level: b.version, ...o }), ...(after ? [after] : [])]));
  return c;
}

/** Normal DISCONNECT, resolved once the broker closed the connection. */
export async function leave(c: WireClient): Promise<void> {
  c.send({ cmd: 'disconnect' });
  await closes(c);
}

/** Whether the broker sent a `cmd` packet (with that reason code, when given). */
export const sent = (c: WireClient, cmd: string, reason?: number) =>
  c.received.some((p) => p.cmd === cmd && (reason === undefined || code(p) === reason));

export const code = (p: Received | undefined) => p?.reasonCode ?? p?.returnCode;

/** True when the broker closes the connection within `ms`. */
export const closes = (c: WireClient, ms = 3000) => c.closedWithin(ms);

/** Whether a connection the broker should refuse was accepted, and whether the broker closed it. */
export async function refusal(c: WireClient, ms = 3000): Promise<{ accepted: boolean; closed: boolean }> {
  const connack = await c.next('connack', ms);
  return { accepted: code(connack) === 0, closed: await closes(c, ms) };
}

/** Connects, writes the bytes, and says whether the broker closed the connection (what a malformed packet must cause). */
export async function closedAfter(b: Target, bytes: Buffer, connect: Record<string, unknown> = {}): Promise<{ closed: boolean }> {
  const c = await b.connect(connect);
  c.raw(bytes);
  return { closed: await closes(c) };
}

/** Publishes as they arrive, until `n` have or `ms` pass without one. */
export const publishes = (c: WireClient, n: number, ms?: number) => c.publishes(n, ms);

/** Payloads as strings. */
export const texts = (ms: Received[]) => ms.map((m) => String(m.payload));

let nextId = 1;
/** A packet identifier for a probe's SUBSCRIBE/UNSUBSCRIBE/PUBLISH. */
export const pid = () => (nextId = (nextId % 60_000) + 1);

/** SUBSCRIBE and the SUBACK's granted codes (undefined: closed or nothing in time). */
export async function subscribe(
  c: WireClient,
  subs: { topic: string; qos: number; nl?: boolean; rap?: boolean; rh?: number }[],
  properties?: Record<string, unknown>,
): Promise<number[] | undefined> {
  const messageId = pid();
  c.send({ cmd: 'subscribe', messageId, subscriptions: subs, ...(properties ? { properties } : {}) });
  const ack = await c.next('suback', 3000);
  return ack?.granted;
}

/** PUBLISH from a client (QoS > 0 gets a packet identifier; acknowledgements are left to the probe). */
export function publish(c: WireClient, topic: string, payload: string | Buffer, opts: Record<string, unknown> = {}): number {
  const messageId = pid();
  c.send({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false, messageId, ...opts });
  return messageId;
}

/** A QoS 1 PUBLISH, resolved once the broker's PUBACK came (so that it has taken the message). */
export async function publishAcked(c: WireClient, topic: string, payload: string | Buffer, opts: Record<string, unknown> = {}) {
  publish(c, topic, payload, { qos: 1, ...opts });
  const ack = await c.next('puback', 3000);
  if (!ack) throw new Error(`no PUBACK for ${topic}`);
  return ack;
}

/** Waits (for what a broker does on its own clock: keepalive, expiry, will delay). */
export const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
