import type { Duplex } from 'node:stream';
import type { Aedes, AedesPublishPacket } from './vendor/aedes/aedes.js';
import type { BrokerProbe, ConnInfo, ProbeEvents } from '../probe.js';
import type { ClientHandle } from './client.js';
import { engineInternal, type ConnectFacts, type ConnectGuard } from './access.js';
import { watchDeliveries } from './deliveries.js';
import type { PublishView, SubscriptionView } from './packets.js';

export type { PublishProperties, PublishView, SubscriptionView } from './packets.js';
export type { ConnectFacts, ConnectGuard } from './access.js';

/** How an in-process connection differs from a socket's. */
export interface InternalConnectOptions {
  /**
   * QoS 1/2 messages it may leave unacknowledged before further ones are dropped, in place of
   * max_inflight_messages + max_queued_messages (a Kafka bridge acknowledges only once Kafka took them).
   */
  maxUnacknowledged?: number;
}

/** What the engine reports itself, beside the probe's events (broker/probe.ts). */
export interface EngineEvents {
  /** A new connection's client, before its CONNECT completed. */
  client: [client: ClientHandle];
  /** A CONNACK went out; return code (3.1.1) or reason code (MQTT 5) 0, or none, accepted the client. */
  'connack-sent': [connack: { returnCode?: number; reasonCode?: number }, client: ClientHandle];
  /** The client is connected and its resumed session's queue sent. */
  'client-ready': [client: ClientHandle];
  /** Every message the broker routes; client null for the broker's own ($SYS, alerts, the mqtt capture sink). */
  publish: [packet: PublishView, client: ClientHandle | null];
  subscribe: [subscriptions: SubscriptionView[], client: ClientHandle];
  unsubscribe: [topics: string[], client: ClientHandle];
  ping: [packet: unknown, client: ClientHandle];
  /** A PUBACK/PUBCOMP completed an outbound message; no packet when it was no longer stored. */
  ack: [packet: { cmd?: string; topic?: string; messageId?: number; qos?: number } | null | undefined, client: ClientHandle];
  'keepalive-timeout': [client: ClientHandle];
  /** A message handed to a connected client (after its CONNACK). */
  delivered: [packet: PublishView, client: ClientHandle];
}

/** Every broker event, typed: the engine's and the probe's. */
export type BrokerEvents = EngineEvents & ProbeEvents;

/**
 * The broker as capture, detection, $SYS consumers, the SSE hub and the beats use it: its events, and
 * publishing, subscribing and connecting in-process. Nothing above broker/ sees the engine itself.
 */
export interface BrokerApi {
  /** The broker instance's id. */
  readonly id: string;
  readonly closed: boolean;
  readonly connectedClients: number;
  /** Listens to one broker event; returns the function that stops listening. Listeners must do no more than a few object writes. */
  on<K extends keyof BrokerEvents>(name: K, listener: (...args: BrokerEvents[K]) => void): () => void;
  /** Publishes as the broker itself (no client). */
  publish(packet: { topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean }, done: (err?: Error | null) => void): void;
  /** An in-process subscription to `filter` (engine-internal messages are never handed out); `deliver` calls `done` when it has taken the message. Returns the unsubscribe. */
  subscribe(filter: string, deliver: (packet: PublishView, done: () => void) => void): () => void;
  /** Hands an in-process stream to the broker as a trusted internal connection (client ids starting with `$`). */
  connectInternal(stream: Duplex, opts?: InternalConnectOptions): void;
  /** The transport facts of a client's connection. */
  connOf(client: ClientHandle): ConnInfo | undefined;
  /** The user name a client authenticated as (never its password). */
  usernameOf(client: ClientHandle): string | undefined;
  /** Checks every network CONNECT before its credentials (detection's bans); one guard, the last set. */
  guardConnects(guard: ConnectGuard): void;
  /** Closes the connected network clients `match` picks (internal ones never); returns how many. */
  disconnect(match: (who: ConnectFacts) => boolean): number;
}

/** The engine's events under mqprobe's names → Aedes 1.2's (same arguments, so listeners go straight onto Aedes: no cost per event). */
const AEDES_EVENT: { [K in Exclude<keyof EngineEvents, 'delivered'>]: string } = {
  client: 'client',
  'connack-sent': 'connackSent',
  'client-ready': 'clientReady',
  publish: 'publish',
  subscribe: 'subscribe',
  unsubscribe: 'unsubscribe',
  ping: 'ping',
  ack: 'ack',
  'keepalive-timeout': 'keepaliveTimeout',
};

type Listener = (...args: never[]) => void;
type LooseEmitter = { on(name: string, fn: Listener): unknown; off(name: string, fn: Listener): unknown };

export interface BrokerApiParts {
  aedes: Aedes;
  probe: BrokerProbe;
  connectInternal(stream: Duplex, opts?: InternalConnectOptions): void;
  connOf(client: ClientHandle): ConnInfo | undefined;
  usernameOf(client: ClientHandle): string | undefined;
  guardConnects(guard: ConnectGuard): void;
}

export function createBrokerApi(p: BrokerApiParts): BrokerApi {
  const { aedes, probe } = p;
  const listen = (emitter: LooseEmitter, name: string, fn: Listener) => {
    emitter.on(name, fn);
    return () => void emitter.off(name, fn);
  };
  return {
    id: aedes.id,
    get closed() {
      return aedes.closed;
    },
    get connectedClients() {
      return aedes.connectedClients;
    },
    on(name, listener) {
      const fn = listener as Listener;
      if (name === 'delivered')
        return listen(aedes as unknown as LooseEmitter, 'client', ((c: ClientHandle) => watchDeliveries(c, fn as never)) as Listener);
      const aedesName = AEDES_EVENT[name as keyof typeof AEDES_EVENT];
      return listen((aedesName ? aedes : probe) as unknown as LooseEmitter, aedesName ?? name, fn);
    },
    publish(packet, done) {
      aedes.publish({ cmd: 'publish', dup: false, ...packet }, done);
    },
    subscribe(filter, deliver) {
      const fn = (packet: AedesPublishPacket, cb: () => void) => (engineInternal(packet.topic) ? cb() : deliver(packet as PublishView, cb));
      aedes.subscribe(filter, fn, () => undefined);
      return () => aedes.unsubscribe(filter, fn, () => undefined);
    },
    connectInternal: p.connectInternal,
    connOf: p.connOf,
    usernameOf: p.usernameOf,
    guardConnects: p.guardConnects,
    disconnect(match) {
      let n = 0;
      for (const client of Object.values((aedes as unknown as { clients: Record<string, ClientHandle> }).clients)) {
        const conn = p.connOf(client);
        if (!conn || conn.transport === 'internal') continue;
        if (!match({ ip: conn.remoteAddress, clientId: client.id, username: p.usernameOf(client) })) continue;
        (client as unknown as { close(): void }).close();
        n++;
      }
      return n;
    },
  };
}
