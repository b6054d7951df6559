import mqttPacket from 'mqtt-packet';

interface ClientInternals {
  connecting: boolean;
  connackSent: boolean;
  closed: boolean;
  id: string | null;
  conn: { write(b: Buffer): unknown; destroyed?: boolean };
  close(): void;
}
interface BrokerInternals {
  preConnect(client: ClientInternals, packet: unknown, done: (err: Error | null, ok?: boolean) => void): void;
}
interface Setup {
  setup(broker: BrokerInternals): Promise<void>;
}

/**
 * A CONNECT is answered within `timeoutMs`: accepted, or refused with CONNACK 3 (server unavailable)
 * and closed. With Redis state Aedes' CONNECT handling waits on Redis (session, will, subscriptions);
 * while Redis is away it waited for as long as the outage lasted and the client hung (issue 18).
 * Aedes' own connect timeout covers only a connection that has not sent CONNECT yet; this covers the
 * time after it, from the CONNECT's arrival. A refused client retries as it would after any refusal; the session work still queued
 * for Redis completes when Redis is back and is overwritten by the client's next CONNECT.
 */
export function withConnectDeadline<T>(persistence: T, timeoutMs: number, onRefused: (clientId: string | null) => void): T {
  const p = persistence as unknown as Setup;
  const setup = p.setup.bind(p);
  p.setup = async (broker) => {
    const preConnect = broker.preConnect;
    // preConnect is the first thing Aedes does with a CONNECT: the deadline runs from there
    broker.preConnect = function (client, packet, done) {
      setTimeout(() => {
        if (!client.connecting || client.connackSent || client.closed) return;
        onRefused(client.id);
        if (!client.conn.destroyed) client.conn.write(mqttPacket.generate({ cmd: 'connack', returnCode: 3, sessionPresent: false }));
        client.close();
      }, timeoutMs).unref();
      preConnect.call(this, client, packet, done);
    };
    await setup(broker);
  };
  return persistence;
}
