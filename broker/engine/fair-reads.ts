import type { Client } from './vendor/aedes/aedes.js';
import type { Duplex } from 'node:stream';

/**
 * Bytes of one connection parsed in one turn of the event loop before the others get theirs: about 50
 * small PUBLISHes. A turn of 16 KiB (~200) made every pass of the loop during a flood as long, and a
 * round trip takes a few passes: the prober of bench/flood/fairness.ts waited p50 30–34 ms, with 4 KiB
 * 13–16 ms (two runs each, alternated, on a machine at load 17–23), the flood itself as fast.
 */
export const TURN_BYTES = 4 * 1024;
/** A turn in the middle of a packet's body: those bytes are only gathered (copied), not handled. */
const BODY_TURN_BYTES = 64 * 1024;

const HAD_TURN = Symbol('mqprobe.hadTurn');
const SCHEDULED = Symbol('mqprobe.scheduled');

interface ClientInternals {
  conn: Duplex & { client: ClientInternals };
  _paused?: boolean;
  _parsingBatch: number;
  _nextBatch: (err?: Error) => void;
  _parser: { parse(buf: Buffer): unknown; packet: { length: number }; _stateCounter: number; _list: { length: number } };
  emit(event: 'error', err: Error): boolean;
  /** This connection had its turn in this pass of the event loop. */
  [HAD_TURN]?: boolean;
  /** Its next pass is scheduled (setImmediate). */
  [SCHEDULED]?: boolean;
}
/**
 * The bytes of this turn: TURN_BYTES, or up to BODY_TURN_BYTES of the rest of a larger packet's body
 * when mqtt-packet's parser waits for one (state 2, `_parsePayload`; a body that large-bodies.ts gathers
 * has left the parser's list, so at its end one turn may take up to BODY_TURN_BYTES of what follows).
 */
function turnBytes(parser: ClientInternals['_parser']): number {
  if (parser._stateCounter !== 2) return TURN_BYTES;
  return Math.max(TURN_BYTES, Math.min(BODY_TURN_BYTES, parser.packet.length - parser._list.length));
}

/**
 * Reads a connection in bounded turns. Aedes 1.2 parses everything buffered on a socket as soon as
 * the previous batch completes (`nextBatch` in lib/client.js), and QoS 0 batches complete within the
 * same turn, so one flooding publisher keeps the thread until its socket is empty while every other
 * client's packets wait (a prober's round trip: 705 ms against Mosquitto's 4.7 ms). Here a turn parses
 * at most TURN_BYTES, and a connection that already had its turn in this pass of the event loop waits
 * for the next one (setImmediate), after the other sockets' I/O. Its unread bytes stay in the socket,
 * so TCP pushes back on the flooder and on nobody else.
 *
 * The turn state is two properties of the client and the functions are shared: an idle connection
 * holds one small closure here (the engine's batch callback, which it calls unbound).
 */
export function readInTurns(client: Client): void {
  const c = client as unknown as ClientInternals;
  const conn = c.conn;
  conn.removeListener('readable', c._nextBatch);
  // Aedes starts the count at 1 and lets every 'readable' event take one off (so a readable event
  // during a pending batch starts parsing the next one); here only completed packets count
  c._parsingBatch = 0;
  c[HAD_TURN] = false;
  c[SCHEDULED] = false;
  c._nextBatch = (err?: Error) => batchDone(c, err);
  conn.on('readable', onReadable);
}

function onReadable(this: { client: ClientInternals }): void {
  turn(this.client);
}

function batchDone(c: ClientInternals, err?: Error): void {
  if (err) {
    c.emit('error', err);
    return;
  }
  if (c._paused) return;
  c._parsingBatch = Math.max(0, c._parsingBatch - 1);
  turn(c);
}

function nextPass(c: ClientInternals): void {
  c[HAD_TURN] = false;
  c[SCHEDULED] = false;
  turn(c);
}

function turn(c: ClientInternals): void {
  if (c._paused || c._parsingBatch > 0) return;
  if (c[HAD_TURN]) {
    if (!c[SCHEDULED]) {
      c[SCHEDULED] = true;
      setImmediate(nextPass, c);
    }
    return;
  }
  const buf = c.conn.read(Math.min(c.conn.readableLength, turnBytes(c._parser))) as Buffer | null;
  if (!buf) return; // drained: 'readable' calls again when data arrives
  c[HAD_TURN] = true;
  if (!c[SCHEDULED]) {
    c[SCHEDULED] = true;
    setImmediate(nextPass, c);
  }
  c._parser.parse(buf);
}
