import type { Duplex } from 'node:stream';
import { observeWrites } from './packet-writes.js';

/**
 * Gathers what the broker writes to one connection during one pass of the event loop into one socket
 * write, as Mosquitto writes what it has queued for a client in one go. Aedes writes each packet on
 * its own (mqtt-packet corks only until the next tick), and the packets one incoming PUBLISH causes
 * (its PUBACK, the deliveries) leave in different ticks: without this, TCP_NODELAY turns them into one
 * segment each, and with Nagle's algorithm the second waits for the peer's delayed ACK (40 ms).
 */
export function batchWrites(conn: Duplex): void {
  let corked = false;
  const flush = () => {
    corked = false;
    conn.uncork();
  };
  observeWrites(conn, () => {
    if (corked) return;
    corked = true;
    conn.cork();
    setImmediate(flush);
  });
}
