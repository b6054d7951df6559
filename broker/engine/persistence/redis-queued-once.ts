import { Readable } from 'node:stream';
import { onSetup } from '../on-setup.js';

interface Client {
  id: string;
}
interface Routed {
  brokerId?: string;
  brokerCounter?: number;
}
type Deliver = (client: Client, packet: Routed, cb: () => void) => void;
interface OutgoingStore {
  outgoingStream(client: Client): Readable;
}

/** How long a resumed session's queued messages are remembered against their live copies. */
const QUEUED_MEMORY_MS = 60_000;

/**
 * A QoS 1/2 message for a persistent session that resumes while the message is being routed reached
 * the client twice with Redis state: once from the session's queue and once live. The engine stores a
 * message in every subscribing persistent session (enqueueOffline) before it emits it to live
 * subscribers; with Redis the emit reaches this process's subscribers only when the stream reader
 * reads it back (redis-stream-emitter.ts), later and, under load, seconds later. A session that
 * resumed in between has the message in the queue it reads at the CONNACK, and has its subscriptions
 * back when the live copy comes.
 *
 * Here the messages a connection got from its queue are remembered (by the publishing broker's id and
 * counter, which both copies carry) and their live copy is dropped, for QUEUED_MEMORY_MS after the
 * queue was read: a stream reader further behind than that delivers the copy (QoS 1 allows it;
 * docs/scaling-redis.md). The in-memory emitter delivers synchronously and never has the gap.
 */
export function withQueuedDeliveredOnce<T>(persistence: T): T {
  const queued = new WeakMap<Client, Set<string>>();
  const p = persistence as T & OutgoingStore;
  const stream = p.outgoingStream.bind(p);
  p.outgoingStream = (client) => {
    const seen = new Set<string>();
    queued.set(client, seen);
    setTimeout(() => queued.get(client) === seen && queued.delete(client), QUEUED_MEMORY_MS).unref();
    return Readable.from(remembering(stream(client), seen));
  };
  return onSetup(p, (broker: { deliverQoS: Deliver }) => {
    const { deliverQoS } = broker;
    broker.deliverQoS = function (client, packet, cb) {
      const seen = queued.get(client);
      const key = routeKey(packet);
      if (key !== undefined && seen?.delete(key)) return cb();
      deliverQoS.call(this, client, packet, cb);
    };
  });
}

async function* remembering(source: AsyncIterable<Routed>, seen: Set<string>): AsyncGenerator<Routed> {
  for await (const packet of source) {
    const key = routeKey(packet);
    if (key !== undefined) seen.add(key);
    yield packet;
  }
}

/** The publishing broker's id and message counter: the same on the queued and the live copy. */
function routeKey(packet: Routed): string | undefined {
  return packet.brokerId === undefined ? undefined : `${packet.brokerId}:${packet.brokerCounter}`;
}
