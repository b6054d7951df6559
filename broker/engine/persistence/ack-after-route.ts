import { onSetup } from '../on-setup.js';

type Done = (err?: Error | null) => void;
interface Packet {
  qos: number;
}
interface BrokerInternals {
  authorizePublish(client: unknown, packet: Packet, done: Done): void;
  publish(packet: Packet, client: unknown, done?: Done): void;
}

/**
 * A QoS 1 PUBLISH is acknowledged only once it has been routed: stored in Redis for offline
 * sessions and appended to the shared message stream (redis-stream-emitter.ts).
 *
 * Aedes 1.2.0 writes the PUBACK first and publishes afterwards (lib/handlers/publish.js), so a
 * publish that Redis then loses or refuses had already been acknowledged, and the client dropped it
 * (issue 18). Here the routing runs inside the authorization step, which Aedes completes before it
 * writes the PUBACK: the PUBACK goes out when the routing succeeded; a routing error fails the
 * PUBLISH, Aedes closes the connection without a PUBACK, and the client sends the message again on
 * its next connection (MQTT 3.1.1 4.4). Aedes' own publish that follows the PUBACK is then skipped for
 * that packet. QoS 2 needs nothing: Aedes already routes before the PUBREC. Wills (which also pass
 * the authorization) are routed the same way, once.
 */
export function withAckAfterRoute<T>(persistence: T): T {
  return onSetup(persistence, routeBeforeAck);
}

function routeBeforeAck(broker: BrokerInternals): void {
  const routed = new WeakSet<Packet>();
  const authorize = broker.authorizePublish;
  const publish = broker.publish;
  broker.authorizePublish = function (client, packet, done) {
    authorize.call(this, client, packet, (err) => {
      if (err || packet.qos !== 1) return done(err);
      publish.call(broker, packet, client, (routeErr) => {
        if (routeErr) return done(routeErr);
        routed.add(packet);
        done(null);
      });
    });
  };
  broker.publish = function (packet, client, done) {
    if (routed.has(packet)) {
      routed.delete(packet);
      // the same argument shapes as Aedes' publish(packet, done) / publish(packet, client, done)
      return void (typeof client === 'function' ? (client as Done)() : done?.());
    }
    return publish.call(this, packet, client, done);
  };
}
