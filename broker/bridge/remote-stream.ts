import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { batchWrites } from '../engine/write-batching.js';
import { tlsOn, type BridgeConfig } from './config.js';

const TLS_VERSION = { 'tlsv1.1': 'TLSv1.1', 'tlsv1.2': 'TLSv1.2', 'tlsv1.3': 'TLSv1.3' } as const;

/**
 * The TLS settings of a bridge, read once at start so a missing file stops the start with its name.
 * bridge_capath: Node has no CA directory option, so every *.pem, *.crt and hashed (*.0) file in it is read.
 */
export function tlsOptions(b: BridgeConfig): tls.ConnectionOptions | undefined {
  if (!tlsOn(b)) return undefined;
  const t = b.tls;
  const read = (key: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`connection ${b.name}: ${key} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const ca: Buffer[] = [];
  if (t.cafile) ca.push(read('bridge_cafile', t.cafile));
  if (t.capath) {
    let files: string[];
    try {
      files = readdirSync(t.capath).filter((f) => /\.(pem|crt)$|\.\d+$/.test(f));
    } catch (err) {
      throw new Error(`connection ${b.name}: bridge_capath ${t.capath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    for (const f of files) ca.push(read('bridge_capath', join(t.capath, f)));
  }
  return {
    // bridge_tls_use_os_certs alone: Node's bundled and system store (no `ca` given)
    ca: ca.length ? ca : undefined,
    cert: t.certfile ? read('bridge_certfile', t.certfile) : undefined,
    key: t.keyfile ? read('bridge_keyfile', t.keyfile) : undefined,
    minVersion: TLS_VERSION[t.version ?? 'tlsv1.2'],
    ciphers: t.ciphers,
    ALPNProtocols: t.alpn ? [t.alpn] : undefined,
    rejectUnauthorized: true,
    // bridge_insecure: the chain is still checked, the host name is not (as Mosquitto's)
    checkServerIdentity: t.insecure ? () => undefined : tls.checkServerIdentity,
  };
}

/** Opens the TCP or TLS connection to one remote address (bridge_bind_address as the local address). */
export function openRemote(b: BridgeConfig, address: { host: string; port: number }, tlsOpts: tls.ConnectionOptions | undefined): Duplex {
  const common = { host: address.host, port: address.port, localAddress: b.bindAddress };
  const socket = tlsOpts
    ? tls.connect({ ...tlsOpts, ...common, servername: net.isIP(address.host) ? undefined : address.host })
    : net.connect(common);
  // bridge_tcp_keepalive: SO_KEEPALIVE and TCP_KEEPIDLE (applied once connected; TLS sockets too)
  if (b.tcpKeepaliveIdle !== undefined) socket.setKeepAlive(true, b.tcpKeepaliveIdle * 1000);
  // what mqtt.js writes in one pass of the event loop leaves in one write (one writev per packet before)
  batchWrites(socket);
  return socket;
}
