import type { ClientHandle } from './client.js';
import type { PublishView } from './packets.js';

type Deliver = (packet: PublishView, cb: () => void) => void;
type Delivering = { deliver0?: Deliver; deliverQoS?: Deliver; connackSent?: boolean };

/**
 * Aedes 1.2 has no event per outbound delivery: wrap the client's two delivery functions (its
 * subscribe handler looks them up when a subscription is made, after the `client` event).
 */
export function watchDeliveries(client: ClientHandle, seen: (packet: PublishView, client: ClientHandle) => void): void {
  const c = client as unknown as Delivering;
  for (const name of ['deliver0', 'deliverQoS'] as const) {
    const original = c[name];
    if (!original) continue;
    c[name] = function (this: unknown, packet, cb) {
      // deliverQoS hands QoS 0 packets on to deliver0, which sees them; before its CONNACK a client
      // gets nothing (broker/engine/connack-first.ts skips it; a QoS 1/2 message comes later from its queue)
      if ((name === 'deliver0' || packet.qos > 0) && c.connackSent) seen(packet, client);
      return original.call(this, packet, cb);
    };
  }
}
