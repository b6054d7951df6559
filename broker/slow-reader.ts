import type { Client } from 'aedes';
import type { Duplex } from 'node:stream';

type Deliver = (packet: { qos: number }, cb: () => void) => void;

/** Unsent bytes a connection may hold before QoS 0 messages to it are dropped, when max_queued_bytes is 0. */
export const DEFAULT_SLOW_READER_BYTES = 64 * 1024 * 1024;

/**
 * Keeps one subscriber that stops reading from stalling everybody. Aedes reports a delivery as
 * done only once the socket has drained, and its message emitter runs a bounded number of
 * deliveries at once, so a single full socket ends up holding every other subscriber's messages.
 * Here a delivery is reported done as soon as it is handed to the connection (as Mosquitto
 * queues per client), and QoS 0 messages for a connection that already holds more than
 * `limitBytes` unsent are dropped and counted (Mosquitto's max_queued_bytes). QoS 1/2 messages are
 * never dropped here: they stay in flight or in the session until acknowledged.
 */
export function shieldFromSlowReader(client: Client, limitBytes: number, onDrop: () => void): void {
  const c = client as unknown as { conn: Duplex; deliver0: Deliver; deliverQoS: Deliver };
  const deliver0 = c.deliver0;
  const deliverQoS = c.deliverQoS;
  const ignore = () => undefined;
  c.deliver0 = function (packet, cb) {
    if (c.conn.writableLength > limitBytes) onDrop();
    else deliver0.call(this, packet, ignore);
    cb();
  };
  c.deliverQoS = function (packet, cb) {
    if (packet.qos === 0) return c.deliver0(packet, cb);
    deliverQoS.call(this, packet, ignore);
    cb();
  };
}
