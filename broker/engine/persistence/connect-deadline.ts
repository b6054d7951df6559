import mqttPacket from 'mqtt-packet';
import { onSetup } from '../on-setup.js';

interface ClientInternals {
  connecting: boolean;
  connackSent: boolean;
  closed: boolean;
  id: string | null;
  conn: { write(b: Buffer): unknown; destroyed?: boolean; once(event: 'close', fn: () => void): unknown };
  close(): void;
}
interface BrokerInternals {
  handle(conn: unknown, req?: unknown): ClientInternals;
  preConnect(client: ClientInternals, packet: unknown, done: (err: Error | null, ok?: boolean) => void): void;
  once(event: 'closed', fn: () => void): unknown;
}

/**
 * A CONNECT is answered within `timeoutMs`: accepted, or refused with CONNACK 3 (server unavailable)
 * and closed. With Redis state Aedes' CONNECT handling waits on Redis (session, will, subscriptions);
 * while Redis is away it waited for as long as the outage lasted and the client hung (issue 18).
 * Aedes' own connect timeout covers only a connection that has not sent CONNECT yet; this covers the
 * time after it, from the CONNECT's arrival. A refused client retries as it would after any refusal;
 * the session work still queued for Redis completes when Redis is back and is redone by the client's
 * next CONNECT.
 *
 * At shutdown Aedes closes only the clients it has registered; a connection still in CONNECT (waiting
 * on Redis) or that has not sent one stayed open and kept the listener's close() waiting. Those are
 * refused and closed here when Aedes closes.
 */
export function withConnectDeadline<T>(persistence: T, timeoutMs: number, onRefused: (clientId: string | null) => void): T {
  return onSetup(persistence, (broker: BrokerInternals) => {
    const open = new Set<ClientInternals>();
    const refuse = (client: ClientInternals) => {
      if (!client.connecting || client.connackSent || client.closed) return false;
      if (!client.conn.destroyed) client.conn.write(mqttPacket.generate({ cmd: 'connack', returnCode: 3, sessionPresent: false }));
      client.close();
      return true;
    };
    const handle = broker.handle;
    broker.handle = function (conn, req) {
      const client = handle.call(this, conn, req);
      open.add(client);
      client.conn.once('close', () => open.delete(client));
      return client;
    };
    // preConnect is the first thing Aedes does with a CONNECT: the deadline runs from there
    const preConnect = broker.preConnect;
    broker.preConnect = function (client, packet, done) {
      setTimeout(() => {
        if (refuse(client)) onRefused(client.id);
      }, timeoutMs).unref();
      preConnect.call(this, client, packet, done);
    };
    broker.once('closed', () => {
      for (const client of open) if (!refuse(client) && !client.closed) client.close();
    });
  });
}
