import type { Aedes, Client } from 'aedes';
import type { Logger } from 'pino';
import type { BrokerConfig } from '../config/types.js';
import { connInfo, type BrokerProbe } from '../probe.js';
import { keepaliveOf, type ClientHandle } from './client.js';

/** What the disconnect watcher asks of access control (broker/access.ts). */
export interface DisconnectFacts {
  /** Clients whose session another connection with the same client id took over. */
  takenOver: Pick<WeakSet<Client>, 'has'>;
  usernameOf(client: ClientHandle): string | undefined;
}

/** Turns Aedes' client events into the probe's disconnect reasons and protocol errors (wills: access.ts). */
export function watchClients(
  aedes: Aedes,
  probe: BrokerProbe,
  access: DisconnectFacts,
  log: Logger,
  config: BrokerConfig,
  closing: () => boolean,
): void {
  const keepaliveExpired = new WeakSet<Client>();
  const errored = new WeakMap<Client, Error>();
  const connLog = log.child({ name: 'connection' });
  aedes.on('keepaliveTimeout', (client) => keepaliveExpired.add(client));
  aedes.on('clientError', (client, err) => errored.set(client, err));
  aedes.on('connectionError', (client, err) => {
    // errors before CONNECT completed: malformed packets, CONNECT timeout, TLS/socket failures
    probe.emit('protocol-error', connInfo(client), client, err);
  });
  aedes.on('clientReady', (client) => {
    if (!config.connectionMessages) return;
    const ci = connInfo(client);
    connLog.info(
      `New client connected from ${ci?.remoteAddress ?? 'internal'}:${ci?.remotePort ?? 0} as ${client.id} (c${client.clean ? 1 : 0}, k${keepaliveOf(client)}${access.usernameOf(client) ? `, u'${access.usernameOf(client)}'` : ''}).`,
    );
  });
  aedes.on('clientDisconnect', (client) => {
    const c = client as Client & { _disconnected?: boolean };
    const err = errored.get(client);
    const reason = c._disconnected
      ? 'client-disconnect'
      : keepaliveExpired.has(client)
        ? 'keepalive-timeout'
        : access.takenOver.has(client)
          ? 'session-taken-over'
          : closing()
            ? 'server-shutdown'
            : err
              ? 'error'
              : 'socket-closed';
    if (isParseError(err)) probe.emit('protocol-error', connInfo(client), client, err!);
    probe.emit('disconnect-reason', client, reason, err);
    if (config.connectionMessages)
      connLog.info(
        `Client ${client.id} ${reason === 'client-disconnect' ? 'disconnected' : `closed its connection (${reason}${err ? `: ${err.message}` : ''})`}.`,
      );
  });
}

/** mqtt-packet and mqprobe's own packet checks report protocol violations as plain Errors; tell them from socket errors. */
function isParseError(err: Error | undefined): boolean {
  return !!err && !('code' in err) && !/keep alive timeout|closed|ECONNRESET|EPIPE/.test(err.message);
}
