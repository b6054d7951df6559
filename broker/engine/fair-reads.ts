import type { Client } from './vendor/aedes/aedes.js';
import type { Duplex } from 'node:stream';

/** Bytes of one connection parsed in one turn of the event loop before the others get theirs. */
export const TURN_BYTES = 16 * 1024;

interface ClientInternals {
  conn: Duplex;
  _paused?: boolean;
  _parsingBatch: number;
  _nextBatch: (err?: Error) => void;
  _parser: { parse(buf: Buffer): unknown };
  emit(event: 'error', err: Error): boolean;
}

/**
 * Reads a connection in bounded turns. Aedes 1.2 parses everything buffered on a socket as soon as
 * the previous batch completes (`nextBatch` in lib/client.js), and QoS 0 batches complete within the
 * same turn, so one flooding publisher keeps the thread until its socket is empty while every other
 * client's packets wait (a prober's round trip: 705 ms against Mosquitto's 4.7 ms). Here a turn parses
 * at most TURN_BYTES, and a connection that already had its turn in this pass of the event loop waits
 * for the next one (setImmediate), after the other sockets' I/O. Its unread bytes stay in the socket,
 * so TCP pushes back on the flooder and on nobody else.
 */
export function readInTurns(client: Client): void {
  const c = client as unknown as ClientInternals;
  const conn = c.conn;
  conn.removeListener('readable', c._nextBatch);
  // Aedes starts the count at 1 and lets every 'readable' event take one off (so a readable event
  // during a pending batch starts parsing the next one); here only completed packets count
  c._parsingBatch = 0;
  let hadTurn = false;
  let scheduled = false;
  const nextPass = () => {
    hadTurn = false;
    scheduled = false;
    turn();
  };
  const turn = () => {
    if (c._paused || c._parsingBatch > 0) return;
    if (hadTurn) {
      if (!scheduled) {
        scheduled = true;
        setImmediate(nextPass);
      }
      return;
    }
    const buf = conn.read(Math.min(conn.readableLength, TURN_BYTES)) as Buffer | null;
    if (!buf) return; // drained: 'readable' calls again when data arrives
    hadTurn = true;
    if (!scheduled) {
      scheduled = true;
      setImmediate(nextPass);
    }
    c._parser.parse(buf);
  };
  c._nextBatch = (err?: Error) => {
    if (err) {
      c.emit('error', err);
      return;
    }
    if (c._paused) return;
    c._parsingBatch = Math.max(0, c._parsingBatch - 1);
    turn();
  };
  conn.on('readable', turn);
}
