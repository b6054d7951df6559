import type { Client } from './vendor/aedes/aedes.js';
import type { Duplex } from 'node:stream';
import { observeWrites } from './packet-writes.js';
import type { QueuedBudget } from './queued-budget.js';

type Deliver = (packet: { qos: number }, cb: () => void) => void;

/**
 * Unsent bytes a connection may hold before QoS 0 messages to it are dropped, when max_queued_bytes
 * is 0 (it was 64 MiB: a flood to one subscriber that never reads took 560 MB of RSS). Mosquitto
 * bounds QoS 0 by packets (about max_queued_messages in its out queue); a count of mqprobe's unsent
 * packets at 1000 dropped 2–8 % of the benchmark's QoS 0 fan-in, which Mosquitto delivered whole,
 * so the bound stays in bytes, well above what a subscriber that keeps up ever holds.
 */
export const DEFAULT_SLOW_READER_BYTES = 8 * 1024 * 1024;

export interface DeliveryLimits {
  /** QoS 0: drop when the connection holds more unsent bytes than this. */
  queuedBytes: number;
  /** QoS 1/2: drop when this many are sent and not yet acknowledged (in flight + queued); 0 = no limit. */
  unacknowledged: number;
  /** Unsent bytes across every connection (global_max_queued_bytes). */
  budget: QueuedBudget;
  /** The in-flight part of `unacknowledged` (max_inflight_messages); a lower MQTT 5 Receive Maximum takes its place, as in Mosquitto. */
  inflight: number;
}

/** The unacknowledged QoS 1/2 messages a client may have: its queue plus what may be in flight to it. */
function unacknowledgedCap(limits: DeliveryLimits, client: { version?: number; receiveMaximum?: number }): number {
  if (limits.unacknowledged === 0) return 0;
  const receiveMaximum = client.version === 5 ? (client.receiveMaximum ?? 0) : 0;
  const inflight = receiveMaximum > 0 && (limits.inflight === 0 || receiveMaximum < limits.inflight) ? receiveMaximum : limits.inflight;
  return limits.unacknowledged - limits.inflight + inflight;
}

/**
 * Keeps one subscriber that stops reading from stalling everybody, and bounds what it costs.
 * Aedes reports a delivery as done only once the socket has drained, and its message emitter runs
 * a bounded number of deliveries at once, so a single full socket ends up holding every other
 * subscriber's messages. Here a delivery is reported done as soon as it is handed to the
 * connection (Mosquitto queues per client too), and as in Mosquitto a message is dropped and
 * counted when the client's queue is full. QoS 0: when it holds more than `queuedBytes` unsent, or
 * when the broker as a whole is over its budget and this client holds more than its share.
 * QoS 1/2: over `unacknowledged` PUBLISHes awaiting PUBACK/PUBCOMP
 * (max_inflight_messages + max_queued_messages).
 */
export function applyDeliveryLimits(client: Client, limits: DeliveryLimits, onDrop: (qos: number) => void): void {
  const c = client as unknown as {
    conn: Duplex;
    deliver0: Deliver;
    deliverQoS: Deliver;
    /** MQTT 5 deliveries waiting for the client's Receive Maximum (vendored engine, patch 11) */
    _outWaiting: unknown[];
    version?: number;
    receiveMaximum?: number;
    _parser: { on(e: 'packet', f: (p: { cmd: string }) => void): void };
  };
  const conn = c.conn;
  let awaitingAck = 0;
  observeWrites(conn, (p) => {
    if (p.cmd === 'publish' && (p.qos ?? 0) > 0) awaitingAck++;
  });
  c._parser.on('packet', (p) => {
    if ((p.cmd === 'puback' || p.cmd === 'pubcomp') && awaitingAck > 0) awaitingAck--;
  });
  const deliver0 = c.deliver0;
  const deliverQoS = c.deliverQoS;
  const ignore = () => undefined;
  const full = () => {
    const bytes = conn.writableLength;
    if (bytes === 0) return false;
    return bytes > limits.queuedBytes || limits.budget.over(conn, bytes);
  };
  c.deliver0 = function (packet, cb) {
    if (full()) onDrop(0);
    else {
      deliver0.call(this, packet, ignore);
      limits.budget.holding(conn);
    }
    cb();
  };
  c.deliverQoS = function (packet, cb) {
    if (packet.qos === 0) return c.deliver0(packet, cb);
    // the engine holds back what the client's MQTT 5 Receive Maximum does not yet allow: it counts as queued
    const cap = unacknowledgedCap(limits, c);
    if (cap > 0 && awaitingAck + c._outWaiting.length >= cap) onDrop(packet.qos);
    else deliverQoS.call(this, packet, ignore);
    limits.budget.holding(conn);
    cb();
  };
}
