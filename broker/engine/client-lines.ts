import type { Aedes, Client } from './vendor/aedes/aedes.js';
import type { MosquittoLineWriter } from '../logger.js';
import type { BrokerProbe, ConnInfo } from '../probe.js';
import { connInfo } from '../probe.js';
import { clientMeta } from './access.js';
import type { MosqLogType } from '../log/mosquitto-format.js';

/**
 * Mosquitto 2.0's log lines for what clients do, word for word (src/handle_connect.c, loop.c,
 * handle_subscribe.c, handle_unsubscribe.c): connects, refusals, disconnects, timeouts, protocol
 * errors, subscriptions. Same text in both log formats; each line carries its Mosquitto type.
 */
export interface ClientLineOptions {
  /** connection_messages: the connect and disconnect lines. */
  connectionMessages: boolean;
  /** Whether a type is printed at all (lines of disabled types are not even built). */
  enabled(type: MosqLogType): boolean;
}

/** Mosquitto's protocol numbers in `(p2, …)`: 3.1 → 1, 3.1.1 → 2, 5 → 5. */
const PROTOCOL: Record<number, number> = { 3: 1, 4: 2, 5: 5 };

const keepaliveOf = (c: Client) => {
  const ms = (c as unknown as { _keepaliveInterval: number })._keepaliveInterval;
  return ms > 0 ? Math.round((ms - 1) / 1500) : 0;
};
const isInternal = (ci: ConnInfo | undefined) => ci?.transport === 'internal';
/** Mosquitto names a client before its CONNECT is accepted by its address. */
const addressOf = (ci: ConnInfo | undefined) => ci?.remoteAddress ?? '<unknown>';

/** `error:0A00010B:SSL routines::wrong version number`, as OpenSSL 3 prints it for Mosquitto, from Node's longer message. */
function openSslError(err: Error): string {
  const m = /error:([0-9A-F]{8}):([^:]*):[^:]*:([^:\n]*)/.exec(err.message);
  return m ? `error:${m[1]}:${m[2]}::${m[3]}` : err.message.trim();
}

export function logClientLines(aedes: Aedes, probe: BrokerProbe, write: MosquittoLineWriter, opts: ClientLineOptions): void {
  const line = (type: MosqLogType, text: string) => {
    if (opts.enabled(type)) write(type, text);
  };
  const ready = new WeakSet<object>();
  const connacks = new WeakMap<object, { sessionPresent?: boolean; returnCode?: number }>();
  const protocolErrors = new WeakSet<object>();
  const refused = new WeakMap<object, string>();
  /** Clients past their disconnect: Aedes then drops a clean session's subscriptions, which Mosquitto does not log. */
  const gone = new WeakSet<object>();
  const conn = opts.connectionMessages;

  if (conn) {
    probe.on('connection-opened', (ci) =>
      line('notice', `New connection from ${ci.remoteAddress}:${ci.remotePort} on port ${ci.listenerPort}.`),
    );
  }
  aedes.on('connackSent', (packet, client) => {
    // kept only for the debug line that names it (an entry per connected client otherwise)
    if (packet.returnCode === 0) return void (opts.enabled('debug') && connacks.set(client, packet));
    line('debug', `Sending CONNACK to ${addressOf(connInfo(client))} (0, ${packet.returnCode})`);
    const reason = refused.get(client);
    if (reason && conn) line('notice', `Client <unknown> disconnected${reason}.`);
  });
  aedes.on('clientReady', (client) => {
    const ci = connInfo(client);
    if (isInternal(ci)) return;
    ready.add(client);
    const user = clientMeta(client)?.username;
    if (conn)
      line(
        'notice',
        `New client connected from ${ci?.remoteAddress}:${ci?.remotePort} as ${client.id} (p${PROTOCOL[client.version ?? 4] ?? client.version}, c${client.clean ? 1 : 0}, k${keepaliveOf(client)}${user !== undefined ? `, u'${user}'` : ''}).`,
      );
    if (opts.enabled('debug')) {
      const will = (client as unknown as { will?: { topic: string; payload: Buffer; qos: number; retain: boolean } }).will;
      if (will) {
        line('debug', `Will message specified (${will.payload.length} bytes) (r${will.retain ? 1 : 0}, q${will.qos}).`);
        line('debug', `\t${will.topic}`);
      } else line('debug', 'No will message specified.');
      const ack = connacks.get(client);
      line('debug', `Sending CONNACK to ${client.id} (${ack?.sessionPresent ? 1 : 0}, ${ack?.returnCode ?? 0})`);
    }
  });
  // a refused CONNECT: Mosquitto has not given the client its id yet, hence <unknown>
  // (logged once its CONNACK is out, in Mosquitto's order)
  probe.on('connection-refused', (client, _rc, reason) => {
    protocolErrors.add(client);
    const auth =
      reason === 'bad-credentials' ||
      reason === 'unknown-user' ||
      reason === 'not-authorized' ||
      reason === 'anonymous-not-allowed' ||
      reason === 'banned';
    refused.set(client, auth ? ', not authorised' : ' due to protocol error');
  });
  probe.on('protocol-error', (ci, client, err) => {
    if (isInternal(ci)) return;
    if (client && ready.has(client)) {
      protocolErrors.add(client); // its disconnect line follows (disconnect-reason 'error')
      return;
    }
    if (client && protocolErrors.has(client)) return; // already logged as refused
    if (client) protocolErrors.add(client);
    if (!client && (ci?.transport === 'tls' || ci?.transport === 'wss')) {
      // a failed TLS handshake (no MQTT client yet), in Mosquitto 2.0's words (net.c), with OpenSSL's error string
      line('notice', `Client connection from ${addressOf(ci)} failed: ${openSslError(err)}.`);
      return;
    }
    if (conn)
      line(
        'notice',
        /did not arrive in time/.test(err.message)
          ? 'Client <unknown> has exceeded timeout, disconnecting.'
          : 'Client <unknown> disconnected due to protocol error.',
      );
  });
  probe.on('disconnect-reason', (client, reason) => {
    gone.add(client);
    if (!ready.has(client) || !conn) return;
    const id = client.id;
    if (reason === 'client-disconnect') {
      line('debug', `Received DISCONNECT from ${id}`);
      line('notice', `Client ${id} disconnected.`);
    } else if (reason === 'keepalive-timeout') line('notice', `Client ${id} has exceeded timeout, disconnecting.`);
    else if (reason === 'session-taken-over') line('notice', `Client ${id} already connected, closing old connection.`);
    else if (reason === 'administrative-action') line('notice', `Client ${id} been disconnected by administrative action.`);
    else if (reason === 'socket-closed') line('notice', `Client ${id} closed its connection.`);
    else if (reason === 'error')
      line(
        'notice',
        protocolErrors.has(client) ? `Client ${id} disconnected due to protocol error.` : `Client ${id} closed its connection.`,
      );
  });

  aedes.on('subscribe', (subs, client) => {
    if (!client || !ready.has(client)) return;
    line('debug', `Received SUBSCRIBE from ${client.id}`);
    for (const s of subs) {
      line('debug', `\t${s.topic} (QoS ${s.qos})`);
      line('subscribe', `${client.id} ${s.qos} ${s.topic}`);
    }
    line('debug', `Sending SUBACK to ${client.id}`);
  });
  aedes.on('unsubscribe', (topics, client) => {
    if (!client || !ready.has(client) || gone.has(client)) return;
    line('debug', `Received UNSUBSCRIBE from ${client.id}`);
    for (const t of topics) {
      line('debug', `\t${t}`);
      line('unsubscribe', `${client.id} ${t}`);
    }
    line('debug', `Sending UNSUBACK to ${client.id}`);
  });
  if (opts.enabled('debug')) {
    aedes.on('publish', (p, client) => {
      if (client && ready.has(client))
        line(
          'debug',
          `Received PUBLISH from ${client.id} (d${p.dup ? 1 : 0}, q${p.qos}, r${p.retain ? 1 : 0}, m${p.messageId ?? 0}, '${p.topic}', ... (${p.payload.length} bytes))`,
        );
    });
  }
}
