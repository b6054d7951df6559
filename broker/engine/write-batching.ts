import type { Duplex } from 'node:stream';
import { observeWrites } from './packet-writes.js';

/**
 * Gathers what the broker writes to one connection during one pass of the event loop into one socket
 * write, as Mosquitto writes what it has queued for a client in one go. Aedes writes each packet on
 * its own (mqtt-packet corks only until the next tick), so 500 deliveries that 10 publishers' reads
 * cause in one pass were 500 writes, and with TCP_NODELAY 500 segments; batched, they are one
 * (test/broker/write-batching.test.ts). That is what lets TCP_NODELAY be the default: it ends the
 * 40 ms wait of a packet behind an unacknowledged one (Nagle's algorithm meeting the peer's delayed
 * ACK), and the batching keeps throughput (QoS 0 fan-in: Nagle alone about 54,000 msg/s, TCP_NODELAY
 * alone 29,000, both together 108,000 on one machine, alternated).
 */
export function batchWrites(conn: Duplex): void {
  observeWrites(conn, corkUntilNextPass);
}

/** Whether a connection is corked until the next pass (a property, not a closure per connection). */
const CORKED = Symbol('mqprobe.corked');
type Corkable = Duplex & { [CORKED]?: boolean };

function corkUntilNextPass(_packet: unknown, stream: object): void {
  const conn = stream as Corkable;
  if (conn[CORKED]) return;
  conn[CORKED] = true;
  conn.cork();
  setImmediate(uncork, conn);
}

function uncork(conn: Corkable): void {
  conn[CORKED] = false;
  conn.uncork();
}
