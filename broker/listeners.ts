import net from 'node:net';
import tls from 'node:tls';
import http from 'node:http';
import https from 'node:https';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { Logger } from 'pino';
import type { ListenerConfig } from './config/types.js';
import { tagConnection, type BrokerProbe, type ConnInfo } from './probe.js';
import { readProxyHeader } from './proxy-protocol.js';
import type { ConnectionGate } from './connection-gate.js';

/**
 * Connections the kernel completes before the broker accepts them (capped by net.core.somaxconn).
 * Node's default, 511, overflowed when 10,000 clients came back at once after an outage (bench
 * scenario G): with SYN cookies on, some then got a reset instead of their CONNACK.
 */
const LISTEN_BACKLOG = 4096;

export interface BoundListener {
  config: ListenerConfig;
  port: number;
  close(): Promise<void>;
  /** Stop accepting without touching open connections. */
  stopAccepting(): void;
}

export type Accept = (stream: Duplex, conn: ConnInfo, req?: IncomingMessage) => void;

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** TLS options from the Mosquitto keys; undefined when the listener is not TLS. */
export function tlsOptions(l: ListenerConfig): tls.TlsOptions | undefined {
  const t = l.tls;
  if (!t.certfile || !t.keyfile) return undefined;
  const ca: Buffer[] = [];
  if (t.cafile) ca.push(read(t.cafile, 'cafile'));
  if (t.capath) {
    for (const f of readdirSync(t.capath)
      .filter((f) => /\.(pem|crt)$/.test(f))
      .sort())
      ca.push(read(join(t.capath, f), 'capath certificate'));
  }
  return {
    cert: read(t.certfile, 'certfile'),
    key: read(t.keyfile, 'keyfile'),
    ca: ca.length ? ca : undefined,
    crl: t.crlfile ? read(t.crlfile, 'crlfile') : undefined,
    ciphers: t.ciphers,
    minVersion: t.tlsVersion === 'tlsv1.3' ? 'TLSv1.3' : t.tlsVersion === 'tlsv1.1' ? 'TLSv1.1' : 'TLSv1.2',
    requestCert: t.requireCertificate || ca.length > 0,
    rejectUnauthorized: t.requireCertificate,
  };
}

function tlsDetails(s: tls.TLSSocket): ConnInfo['tls'] {
  const cert = s.getPeerCertificate();
  const has = cert && Object.keys(cert).length > 0;
  return {
    protocol: s.getProtocol() ?? undefined,
    cipher: s.getCipher()?.name,
    subject: has
      ? Object.entries(cert.subject ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(',')
      : undefined,
    issuer: has
      ? Object.entries(cert.issuer ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(',')
      : undefined,
    serial: has ? cert.serialNumber?.match(/.{1,2}/g)?.join(':') : undefined,
    authorized: s.authorized,
    commonName: has ? (Array.isArray(cert.subject?.CN) ? cert.subject.CN[0] : cert.subject?.CN) : undefined,
  };
}

function host(l: ListenerConfig): string | undefined {
  if (l.bind) return l.bind;
  if (l.socketDomain === 'ipv4') return '0.0.0.0';
  if (l.socketDomain === 'ipv6') return '::';
  return undefined;
}

/** Opens one listener (mqtt or websockets, plain or TLS) and hands every accepted connection to `accept`. */
export async function bindListener(
  l: ListenerConfig,
  accept: Accept,
  probe: BrokerProbe,
  log: Logger,
  opts: { noDelay: boolean; gate?: ConnectionGate },
): Promise<BoundListener> {
  const secure = tlsOptions(l);
  let server: net.Server;
  let port = l.port;
  const connInfo = (transport: ConnInfo['transport'], sock: net.Socket): ConnInfo => ({
    listener: l,
    listenerPort: port,
    transport,
    remoteAddress: sock.remoteAddress?.replace(/^::ffff:/, ''),
    remotePort: sock.remotePort,
    tls: sock instanceof tls.TLSSocket ? tlsDetails(sock) : undefined,
    openedAt: Date.now(),
  });
  const open = (stream: Duplex, info: ConnInfo, req?: IncomingMessage) => {
    if (opts.gate && !opts.gate.admit(stream)) {
      // global_max_connections, in Mosquitto's words
      log.info({ log_type: 'notice' }, `Client connection from ${info.remoteAddress} denied: max_connections exceeded.`);
      stream.destroy();
      return;
    }
    tagConnection(stream, info);
    probe.emit('connection-opened', info);
    accept(stream, info, req);
  };

  if (l.protocol === 'websockets') {
    const web = secure ? https.createServer(secure) : http.createServer();
    web.on('request', (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('This is an MQTT over WebSockets listener.\n');
    });
    const wss = new WebSocketServer({
      server: web,
      maxPayload: 268435455 + 5,
      // websockets_origin (Mosquitto 2.1): once origins are listed, only those may upgrade
      verifyClient: l.websocketsOrigins
        ? (info, done) => (l.websocketsOrigins!.includes(info.origin) ? done(true) : done(false, 403, 'Origin not allowed'))
        : undefined,
      handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
    });
    wss.on('connection', (ws, req) => {
      const stream = createWebSocketStream(ws);
      stream.on('error', () => ws.terminate());
      open(stream, connInfo(secure ? 'wss' : 'ws', req.socket), req);
    });
    wss.on('error', (err) => log.warn({ err: err.message }, 'websocket server error'));
    server = web;
  } else if (secure) {
    server = tls.createServer({ ...secure, noDelay: opts.noDelay }, (sock) => open(sock, connInfo('tls', sock)));
  } else {
    server = net.createServer({ noDelay: opts.noDelay }, (sock) => {
      if (!l.proxyProtocol) return open(sock, connInfo('tcp', sock));
      // enable_proxy_protocol: the client's address comes in a PROXY header before MQTT (broker/proxy-protocol.ts)
      readProxyHeader(
        sock,
        l.proxyProtocol,
        (real) => open(sock, { ...connInfo('tcp', sock), ...(real.remoteAddress && real) }),
        (err) => {
          const info = connInfo('tcp', sock);
          log.error(
            { log_type: 'error' },
            `Error: bad PROXY protocol header from ${info.remoteAddress}:${info.remotePort}: ${err.message}.`,
          );
          probe.emit('protocol-error', info, undefined, err);
        },
      );
    });
  }
  if (secure) {
    server.on('tlsClientError', (err: Error, sock: tls.TLSSocket) => {
      probe.emit('protocol-error', { ...connInfo(l.protocol === 'websockets' ? 'wss' : 'tls', sock) }, undefined, err);
      sock.destroy();
    });
  }
  server.on('clientError', (err: Error, sock: net.Socket) => sock.destroy(err));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: l.port, host: host(l), ipv6Only: l.socketDomain === 'ipv6', backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err: err.message }, 'listener error'));
  port = (server.address() as AddressInfo).port;
  return {
    config: l,
    port,
    stopAccepting: () => server.close(),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeAllConnections' in server) (server as http.Server).closeAllConnections();
      }),
  };
}
