import { EventEmitter } from 'node:events';
import type { ClientHandle } from './engine/client.js';
import type { SubscriptionView } from './engine/packets.js';
import type { ListenerConfig } from './config/types.js';
import type { BridgeEvent } from './bridge/events.js';

/** What the broker knows about a connection's transport, attached to its stream at accept time. */
export interface ConnInfo {
  listener: ListenerConfig;
  /** The port the listener really bound (differs from the config when it says 0). */
  listenerPort: number;
  /** `internal`: an in-process stream (beats, capture's mqtt sink); only these may use `$` client ids. */
  transport: 'tcp' | 'tls' | 'ws' | 'wss' | 'internal';
  remoteAddress?: string;
  remotePort?: number;
  tls?: {
    protocol?: string;
    cipher?: string;
    subject?: string;
    issuer?: string;
    serial?: string;
    commonName?: string;
    authorized?: boolean;
  };
  openedAt: number;
}

export type RefusalReason =
  | 'bad-credentials'
  | 'unknown-user'
  | 'not-authorized'
  | 'anonymous-not-allowed'
  | 'bad-client-id'
  | 'protocol-version'
  | 'server-limit'
  | 'keepalive-limit'
  | 'server-unavailable'
  /** A detection response banned the source address, client id or user (docs/detection.md). */
  | 'banned';

/** A request the HTTP listener refused (400/401/403), as `http-refused` records it. */
export interface HttpRefusalFacts {
  method: string;
  /** Without the query string (it may hold an access_token), at most 200 characters. */
  path: string;
  status: 400 | 401 | 403;
  reason: string;
  /** The user name it claimed (Basic) or acted as (token), at most 256 characters. */
  username?: string;
  remoteAddress?: string;
  remotePort?: number;
  localPort?: number;
  /** Refusals just before this one that the rate limit kept from being recorded one by one. */
  suppressed: number;
}

/**
 * Facts only mqprobe knows first-hand (its listeners, authentication, ACL and disconnect
 * bookkeeping); the engine's own events are in broker/engine/api.ts, and BrokerApi.on
 * serves both. Listeners must do no more than a few object writes.
 */
export interface ProbeEvents {
  'broker-starting': [listeners: { listener: ListenerConfig; port: number }[]];
  'broker-stopped': [];
  'connection-opened': [conn: ConnInfo];
  /**
   * A CONNECT refused before the client became a connected client: with the CONNACK return code ≠ 0,
   * or `undefined` where the connection was closed without a CONNACK (`detect_ban_answer close`).
   */
  'connection-refused': [client: ClientHandle, returnCode: number | undefined, reason: RefusalReason, username: string | undefined];
  /** A PUBLISH the ACL denied: dropped, as Mosquitto drops it. */
  'publish-denied': [
    client: ClientHandle,
    packet: { topic: string; qos: number; retain: boolean; dup: boolean; messageId?: number; payloadSize: number },
  ];
  /** A subscription the ACL denied (SUBACK 0x80). */
  'subscription-denied': [client: ClientHandle, sub: SubscriptionView];
  /** A malformed or oversized packet, or a socket that never sent CONNECT. */
  'protocol-error': [conn: ConnInfo | undefined, client: ClientHandle | undefined, error: Error];
  /** A request to the HTTP listener refused: bad or missing credentials, or the ACL (rate limited: broker/http/refusals.ts). */
  'http-refused': [refusal: HttpRefusalFacts];
  /** The will message of a client is being published. */
  'will-published': [client: ClientHandle, will: { topic: string; qos: number; retain: boolean; payloadSize: number }];
  /** Why a connected client went away, reported just before Aedes' clientDisconnect. */
  'disconnect-reason': [
    client: ClientHandle,
    reason:
      | 'client-disconnect'
      | 'socket-closed'
      | 'keepalive-timeout'
      | 'session-taken-over'
      | 'administrative-action'
      | 'server-shutdown'
      | 'error',
    error?: Error,
  ];
  /** A bridge (`connection` block) changed state: connecting, connected, waiting (after a failure), idle (lazy), stopped. */
  'bridge-state': [event: BridgeEvent];
  /** A `kafka_bridge` changed state (bridges/kafka/): delivering, failing (with the reason), stopped. */
  'kafka-bridge-state': [event: { bridge: string; state: string; reason?: string }];
}

export class BrokerProbe extends EventEmitter<ProbeEvents> {}

const CONN = Symbol.for('mqprobe.conn');

/** Attach connection info to a stream when the listener accepts it. */
export function tagConnection(stream: object, info: ConnInfo): void {
  (stream as Record<symbol, ConnInfo>)[CONN] = info;
}

/** The connection info of a stream or of an Aedes client. */
export function connInfo(clientOrStream: ClientHandle | object | undefined): ConnInfo | undefined {
  if (!clientOrStream) return undefined;
  const c = clientOrStream as { conn?: object };
  const stream = (c.conn ?? clientOrStream) as Record<symbol, ConnInfo>;
  return stream[CONN];
}
