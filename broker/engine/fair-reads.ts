import type { Client } from './vendor/aedes/aedes.js';
import type { Duplex } from 'node:stream';

/** Bytes of one connection parsed in one turn of the event loop before the others get theirs. */
export const TURN_BYTES = 16 * 1024;

const HAD_TURN = Symbol('mqprobe.hadTurn');
const SCHEDULED = Symbol('mqprobe.scheduled');

interface ClientInternals {
  conn: Duplex & { client: ClientInternals };
  _paused?: boolean;
  _parsingBatch: number;
  _nextBatch: (err?: Error) => void;
  _parser: { parse(buf: Buffer): unknown };
  emit(event: 'error', err: Error): boolean;
  /** This connection had its turn in this pass of the event loop. */
  [HAD_TURN]?: boolean;
  /** Its next pass is scheduled (setImmediate). */
  [SCHEDULED]?: boolean;
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
  const buf = c.conn.read(Math.min(c.conn.readableLength, TURN_BYTES)) as Buffer | null;
  if (!buf) return; // drained: 'readable' calls again when data arrives
  c[HAD_TURN] = true;
  if (!c[SCHEDULED]) {
    c[SCHEDULED] = true;
    setImmediate(nextPass, c);
  }
  c._parser.parse(buf);
}
