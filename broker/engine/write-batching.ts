import type { Duplex } from 'node:stream';

/** A chunk this large is written on its own (after what was gathered before it), never copied. */
const DIRECT_BYTES = 64 * 1024;

type Callback = (err?: Error | null) => void;
type Write = (this: Duplex, chunk: Buffer | string, encoding?: BufferEncoding, cb?: Callback) => boolean;

/** A written chunk as gathered: UTF-8 strings as they are (copied once, at the flush), the rest as a Buffer. */
function asPiece(chunk: unknown, encoding: BufferEncoding | undefined): Buffer | string {
  if (typeof chunk === 'string') return (encoding ?? 'utf8') === 'utf8' ? chunk : Buffer.from(chunk, encoding);
  if (Buffer.isBuffer(chunk)) return chunk;
  const view = chunk as Uint8Array;
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/**
 * Gathers what the broker writes to one connection during one pass of the event loop into one socket
 * write of one buffer, as Mosquitto writes what it has queued for a client in one go. Aedes writes each
 * packet on its own, and mqtt-packet each packet in 4–6 pieces (header, lengths, topic, payload), so 500
 * deliveries that 10 publishers' reads cause in one pass were 500 writes, and with TCP_NODELAY 500
 * segments; gathered, they are one (test/broker/write-batching.test.ts). That is what lets TCP_NODELAY be
 * the default: it ends the 40 ms wait of a packet behind an unacknowledged one (Nagle's algorithm meeting
 * the peer's delayed ACK), and the batching keeps throughput (QoS 0 fan-in: Nagle alone about 54,000
 * msg/s, TCP_NODELAY alone 29,000, both together 108,000 on one machine, alternated).
 *
 * The pieces are copied into one buffer rather than corked: a corked stream keeps every piece as its own
 * entry, so a subscriber that stops reading held its 8 MiB of unsent messages (max_queued_bytes) as
 * 560,000 pieces of ~15 bytes, about 150 MB of heap, and one flooding publisher took the broker to 330 MB
 * of RSS (bench/flood/fairness.ts). Copied, the same 8 MiB are a few hundred buffers.
 */
export function batchWrites(conn: Duplex): void {
  const c = conn as Gathering;
  c[OWN] = ownMethods(conn);
  c[PIECES] = null;
  c[BYTES] = 0;
  c[CALLBACKS] = null;
  c[SCHEDULED] = false;
  conn.write = gatheredWrite as Duplex['write'];
  conn.end = endAfterFlush as Duplex['end'];
  conn.destroy = destroyAfterFlush as Duplex['destroy'];
}

// Per-connection state lives in properties read by shared functions: a closure per connection cost
// memory per idle client (docs/scaling.md). The lists of gathered pieces and callbacks exist only
// while something is gathered.
const OWN = Symbol('mqprobe.ownWrite');
const PIECES = Symbol('mqprobe.pieces');
const BYTES = Symbol('mqprobe.bytes');
const CALLBACKS = Symbol('mqprobe.callbacks');
const SCHEDULED = Symbol('mqprobe.flushScheduled');
type End = (this: Duplex, ...args: unknown[]) => Duplex;
type Destroy = (this: Duplex, err?: Error) => Duplex;
type Methods = { write: Write; end: End; destroy: Destroy };
/** The methods the connections of one class inherit, kept once per class. */
const inherited = new WeakMap<object, Methods>();

/** The stream's own methods (functions, not closures), called with the connection as `this`. */
function ownMethods(conn: Duplex): Methods {
  const methods = () => ({ write: conn.write as Write, end: conn.end as End, destroy: conn.destroy as Destroy });
  // a connection another layer already wrapped has methods of its own
  if (Object.hasOwn(conn, 'write') || Object.hasOwn(conn, 'end') || Object.hasOwn(conn, 'destroy')) return methods();
  const proto = Object.getPrototypeOf(conn) as object;
  let m = inherited.get(proto);
  if (!m) inherited.set(proto, (m = methods()));
  return m;
}

type Gathering = Duplex & {
  [OWN]: Methods;
  [PIECES]: (Buffer | string)[] | null;
  [BYTES]: number;
  [CALLBACKS]: Callback[] | null;
  [SCHEDULED]: boolean;
};

function flush(c: Gathering): void {
  c[SCHEDULED] = false;
  const pieces = c[PIECES];
  if (pieces === null) return;
  const out = pieces.length === 1 && typeof pieces[0] !== 'string' ? pieces[0] : Buffer.allocUnsafe(c[BYTES]);
  if (out !== pieces[0]) {
    let at = 0;
    for (const p of pieces) at += typeof p === 'string' ? out.write(p, at) : p.copy(out, at);
  }
  const cbs = c[CALLBACKS];
  c[PIECES] = null;
  c[BYTES] = 0;
  c[CALLBACKS] = null;
  c[OWN].write.call(c, out, undefined, cbs === null ? undefined : (err) => cbs.forEach((cb) => cb(err)));
}

function gatheredWrite(this: Gathering, chunk: unknown, encoding?: BufferEncoding | Callback, cb?: Callback): boolean {
  if (typeof encoding === 'function') [cb, encoding] = [encoding, undefined];
  // after the end the stream answers as it would (an error), with nothing gathered
  if (this.destroyed || this.writableEnded) return this[OWN].write.call(this, chunk as Buffer, encoding, cb);
  const piece = asPiece(chunk, encoding);
  const n = typeof piece === 'string' ? Buffer.byteLength(piece) : piece.length;
  if (n >= DIRECT_BYTES) {
    flush(this);
    return this[OWN].write.call(this, piece, undefined, cb);
  }
  (this[PIECES] ??= []).push(piece);
  this[BYTES] += n;
  if (cb) (this[CALLBACKS] ??= []).push(cb);
  if (!this[SCHEDULED]) {
    this[SCHEDULED] = true;
    setImmediate(flush, this);
  }
  return !this.writableNeedDrain;
}

// what is gathered leaves before the end (a refusing CONNACK, then the close)
function endAfterFlush(this: Gathering, ...args: unknown[]): Duplex {
  flush(this);
  return this[OWN].end.call(this, ...args);
}

function destroyAfterFlush(this: Gathering, err?: Error): Duplex {
  if (!err && !this.destroyed) flush(this);
  return this[OWN].destroy.call(this, err);
}
