import type { Aedes, Client } from './vendor/aedes/aedes.js';
import { connInfo, type BrokerProbe } from '../probe.js';
import { clientDisconnectReasonOf } from './mqtt5-facts.js';

/**
 * Errors the engine reports (clientError) on a connection it keeps open: an MQTT 5 publish the ACL
 * refused gets PUBACK 0x87 and the client stays. Neither the reason of its later disconnect nor a
 * protocol error.
 */
const survived = new WeakSet<Error>();

/** Marks an error handed to the engine as one the connection survives. */
export function survivable(err: Error): Error {
  survived.add(err);
  return err;
}

/** What the disconnect watcher asks of access control (broker/access.ts). */
export interface DisconnectFacts {
  /** Clients whose session another connection with the same client id took over. */
  takenOver: Pick<WeakSet<Client>, 'has'>;
  /** Clients the dynamic security plugin disconnected after a change to their rights. */
  kicked: Pick<WeakSet<Client>, 'has'>;
}

/** Turns Aedes' client events into the probe's disconnect reasons and protocol errors (wills: access.ts). */
export function watchClients(aedes: Aedes, probe: BrokerProbe, access: DisconnectFacts, closing: () => boolean): void {
  const keepaliveExpired = new WeakSet<Client>();
  const errored = new WeakMap<Client, Error>();
  aedes.on('keepaliveTimeout', (client) => keepaliveExpired.add(client));
  aedes.on('clientError', (client, err) => {
    if (!survived.has(err)) errored.set(client, err);
  });
  aedes.on('connectionError', (client, err) => {
    // errors before CONNECT completed: malformed packets, CONNECT timeout, TLS/socket failures
    probe.emit('protocol-error', connInfo(client), client, err);
  });
  aedes.on('clientDisconnect', (client) => {
    const c = client as Client & { _disconnected?: boolean };
    const err = errored.get(client);
    // an MQTT 5 DISCONNECT with reason 0x04 (publish my will) leaves _disconnected false: still the client's own
    const reason =
      c._disconnected || clientDisconnectReasonOf(client) !== undefined
        ? 'client-disconnect'
        : keepaliveExpired.has(client)
          ? 'keepalive-timeout'
          : access.takenOver.has(client)
            ? 'session-taken-over'
            : access.kicked.has(client)
              ? 'administrative-action'
              : closing()
                ? 'server-shutdown'
                : err
                  ? 'error'
                  : 'socket-closed';
    if (isParseError(err)) probe.emit('protocol-error', connInfo(client), client, err!);
    // its log line, in Mosquitto's words, comes from client-lines.ts
    probe.emit('disconnect-reason', client, reason, err);
  });
}

/** mqtt-packet and mqprobe's own packet checks report protocol violations as plain Errors; tell them from socket errors. */
function isParseError(err: Error | undefined): boolean {
  return !!err && !('code' in err) && !/keep alive timeout|closed|ECONNRESET|EPIPE/.test(err.message);
}
