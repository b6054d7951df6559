import type { Client } from './vendor/aedes/aedes.js';
import type { Duplex } from 'node:stream';
import { observeWrites } from './packet-writes.js';
import type { QueuedBudget } from './queued-budget.js';

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

const LIMITS = Symbol('mqprobe.deliveryLimits');
const ON_DROP = Symbol('mqprobe.onDrop');
/** PUBLISHes of QoS 1/2 written to the client and not yet acknowledged (PUBACK, PUBCOMP). */
const AWAITING_ACK = Symbol('mqprobe.awaitingAck');

interface LimitedClient {
  conn: Duplex;
  broker: LimitedBroker;
  /** MQTT 5 deliveries waiting for the client's Receive Maximum (vendored engine, patch 11) */
  _outWaiting: unknown[];
  version?: number;
  receiveMaximum?: number;
  _parser: { on(e: 'packet', f: (this: { client: LimitedClient }, p: { cmd: string }) => void): void };
  [LIMITS]?: DeliveryLimits;
  [ON_DROP]?: (qos: number) => void;
  [AWAITING_ACK]?: number;
}
type Deliver = (client: LimitedClient, packet: { qos: number }, cb: () => void) => void;
/** The engine's per-broker delivery hooks (patch 14). */
interface LimitedBroker {
  deliver0: Deliver;
  deliverQoS: Deliver;
}

const hookedBrokers = new WeakSet<LimitedBroker>();

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
 *
 * The limits and the drop counter are properties of the client, read by one wrap of the broker's
 * delivery hooks (engine patch 14): an idle connection holds no closures for them.
 */
export function applyDeliveryLimits(client: Client, limits: DeliveryLimits, onDrop: (qos: number) => void): void {
  const c = client as unknown as LimitedClient;
  c[LIMITS] = limits;
  c[ON_DROP] = onDrop;
  c[AWAITING_ACK] = 0;
  observeWrites(c.conn, countAwaiting);
  c._parser.on('packet', countAcknowledged);
  if (!hookedBrokers.has(c.broker)) limitDeliveries(c.broker);
}

function countAwaiting(p: { cmd: string; qos?: number }, conn: object): void {
  if (p.cmd !== 'publish' || (p.qos ?? 0) === 0) return;
  const c = (conn as { client: LimitedClient }).client;
  c[AWAITING_ACK] = (c[AWAITING_ACK] ?? 0) + 1;
}

function countAcknowledged(this: { client: LimitedClient }, p: { cmd: string }): void {
  const c = this.client;
  if ((p.cmd === 'puback' || p.cmd === 'pubcomp') && (c[AWAITING_ACK] ?? 0) > 0) c[AWAITING_ACK]!--;
}

const ignore = () => undefined;

function full(conn: Duplex, limits: DeliveryLimits): boolean {
  const bytes = conn.writableLength;
  if (bytes === 0) return false;
  return bytes > limits.queuedBytes || limits.budget.over(conn, bytes);
}

function limitDeliveries(broker: LimitedBroker): void {
  hookedBrokers.add(broker);
  const { deliver0, deliverQoS } = broker;
  broker.deliver0 = function (client, packet, cb) {
    const limits = client[LIMITS];
    if (!limits) return deliver0.call(this, client, packet, cb);
    if (full(client.conn, limits)) client[ON_DROP]!(0);
    else {
      deliver0.call(this, client, packet, ignore);
      limits.budget.holding(client.conn);
    }
    cb();
  };
  broker.deliverQoS = function (client, packet, cb) {
    const limits = client[LIMITS];
    if (!limits) return deliverQoS.call(this, client, packet, cb);
    if (packet.qos === 0) return this.deliver0(client, packet, cb);
    // the engine holds back what the client's MQTT 5 Receive Maximum does not yet allow: it counts as queued
    const cap = unacknowledgedCap(limits, client);
    if (cap > 0 && (client[AWAITING_ACK] ?? 0) + client._outWaiting.length >= cap) client[ON_DROP]!(packet.qos);
    else deliverQoS.call(this, client, packet, ignore);
    limits.budget.holding(client.conn);
    cb();
  };
}
