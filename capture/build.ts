import type { Client } from 'aedes';
import type { ConnInfo } from '../broker/probe.js';
import { DATASET, ECS_VERSION, type CaptureEvent, type Observer } from './event.js';
import type { CaptureHandle } from './handle.js';

const ECS = Object.freeze({ version: ECS_VERSION });
const NETWORK = Object.freeze({ protocol: 'mqtt' as const, transport: 'tcp' as const });
const NETWORK_WS = Object.freeze({ protocol: 'mqtt' as const, transport: 'tcp' as const, application: 'websocket' as const });

/** `::ffff:10.0.0.1` → `10.0.0.1`, so one client has one address whatever the socket family. */
export function plainIp(ip: string | undefined): string | undefined {
  return ip?.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

/**
 * Makes the skeleton of every event. The parts shared by many events (ecs, service, observer per
 * listener) are built once and shared, so the hot path writes a handful of properties.
 */
export class EventFactory {
  private readonly observer: Observer;
  private readonly service: CaptureEvent['service'];
  private readonly byListener = new Map<string, { observer: Observer; destination?: { port: number } }>();
  /** One frozen source/user object per connection/client, serialised once (serialize.ts). */
  private readonly sources = new WeakMap<ConnInfo, { ip?: string; port?: number }>();
  private readonly users = new WeakMap<Client, { name: string }>();

  constructor(info: CaptureHandle['info']) {
    // every event carries these, so they hold only what tells brokers apart (each byte costs serialisation time)
    this.observer = Object.freeze({ type: 'mqtt-broker', product: 'mqprobe', name: info.name, version: info.version });
    this.service = Object.freeze({ type: 'mqtt', id: info.id });
  }

  /** A new event: time now, identity, no sequence yet (the pipeline numbers what it records). */
  make(action: string, kind: CaptureEvent['event']['kind'], category: string[] | undefined, type: string[] | undefined, outcome?: CaptureEvent['event']['outcome']): CaptureEvent {
    const event: CaptureEvent['event'] = { kind, action, dataset: DATASET, id: '', sequence: 0 };
    if (category) event.category = category;
    if (type) event.type = type;
    if (outcome) event.outcome = outcome;
    return { '@timestamp': '', message: '', ecs: ECS, event, observer: this.observer, service: this.service };
  }

  /** Adds where the connection came from and which listener took it. */
  withConn(e: CaptureEvent, conn: ConnInfo | undefined): CaptureEvent {
    if (!conn) return e;
    const l = this.listener(conn);
    e.observer = l.observer;
    if (l.destination) e.destination = l.destination;
    if (conn.remoteAddress !== undefined) {
      let source = this.sources.get(conn);
      if (!source) {
        source = Object.freeze({ ip: plainIp(conn.remoteAddress), port: conn.remotePort });
        this.sources.set(conn, source);
      }
      e.source = source;
    }
    if (conn.transport !== 'internal') e.network = conn.transport === 'ws' || conn.transport === 'wss' ? NETWORK_WS : NETWORK;
    const t = conn.tls;
    if (t) {
      const tls: NonNullable<CaptureEvent['tls']> = { established: true };
      // ECS: tls.version "1.3", tls.version_protocol "tls" (Node says "TLSv1.3")
      if (t.protocol) {
        tls.version = t.protocol.replace(/^TLSv/, '');
        tls.version_protocol = 'tls';
      }
      if (t.cipher) tls.cipher = t.cipher;
      if (t.subject || t.issuer || t.serial) tls.client = { subject: t.subject, issuer: t.issuer, x509: t.serial ? { serial_number: t.serial } : undefined };
      e.tls = tls;
    }
    return e;
  }

  /** Adds the client's connection, id and user. */
  withClient(e: CaptureEvent, client: Client, conn: ConnInfo | undefined, user: string | undefined): CaptureEvent {
    this.withConn(e, conn);
    if (user !== undefined) {
      let u = this.users.get(client);
      if (u?.name !== user) {
        u = Object.freeze({ name: user });
        this.users.set(client, u);
      }
      e.user = u;
    }
    e.mqtt = { client_id: client.id };
    return e;
  }

  private listener(conn: ConnInfo): { observer: Observer; destination?: { port: number } } {
    const key = `${conn.transport} ${conn.listener.bind ?? '*'}:${conn.listenerPort}`;
    let l = this.byListener.get(key);
    if (!l) {
      l = {
        observer: Object.freeze({ ...this.observer, ingress: { interface: { name: key } } }),
        destination: conn.transport === 'internal' ? undefined : Object.freeze({ port: conn.listenerPort }),
      };
      this.byListener.set(key, l);
    }
    return l;
  }
}
