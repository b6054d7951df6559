import { onSetup } from './on-setup.js';

type Deliver = (client: ClientInternals, packet: unknown, cb: () => void) => void;
interface ClientInternals {
  connackSent: boolean;
}
/** The engine's per-broker delivery hooks (patch 14). */
interface BrokerInternals {
  deliver0: Deliver;
  deliverQoS: Deliver;
}

/**
 * MQTT-3.2.0-1: the first packet a server sends on a connection is the CONNACK. Aedes 1.2.0 breaks
 * that when a persistent session (clean session false) resumes: it restores the session's
 * subscriptions (`restoreSubs`) before it stores the will, registers the client and writes the
 * CONNACK, so a message published on a subscribed topic in between is written to the socket
 * ahead of the CONNACK. With Redis state the gap spans several Redis round trips and a busy topic
 * hits it easily (the Zeek beat publishing while a subscriber reconnects after a broker restart).
 *
 * mqtt.js then stalls for good: it handles the early QoS 1 PUBLISH, queues the PUBACK until it is
 * connected, and reads nothing more until that PUBACK is sent, so it never reads the CONNACK. The
 * connection stays open; the session's queue, written after the CONNACK, is never read or
 * acknowledged, and the subscriber gets nothing until its connect timeout ends the connection.
 *
 * Here a client's deliveries are dropped until its CONNACK is written. Nothing is lost: a QoS 1/2
 * message for a persistent session is stored in the session's queue before it is emitted to live
 * subscribers (Aedes' publish runs enqueueOffline before emitPacket), and that queue is read after
 * the CONNACK, so the message arrives from there, once. A QoS 0 message is dropped as it would have
 * been a moment earlier, while the client was offline (Mosquitto does not queue QoS 0 either).
 *
 * The wrap goes on the broker's delivery hooks (engine patch 14) at `persistence.setup`, which Aedes
 * calls with the broker before any connection exists.
 */
export function withConnackFirst<T>(persistence: T): T {
  return onSetup(persistence, holdDeliveriesUntilConnack);
}

function holdDeliveriesUntilConnack(broker: BrokerInternals): void {
  const { deliver0, deliverQoS } = broker;
  broker.deliver0 = function (client, packet, cb) {
    if (client.connackSent) deliver0.call(this, client, packet, cb);
    else setImmediate(cb);
  };
  broker.deliverQoS = function (client, packet, cb) {
    if (client.connackSent) deliverQoS.call(this, client, packet, cb);
    else setImmediate(cb);
  };
}
