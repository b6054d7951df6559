import net from 'node:net';
import tls from 'node:tls';
import { readFile } from 'node:fs/promises';
import type { CaptureConfig } from '../config.js';
import { SinkUnavailableError } from './elasticsearch.js';

/**
 * A TCP or TLS connection to a receiver (`tcp://host:port` or `tls://host:port`), as the logstash
 * and beats sinks open it: TLS checks the server with capture_tls_cafile and presents
 * capture_tls_certfile/keyfile; the key is read at each connection and never appears in a message.
 */
export async function openConnection(url: URL, t: CaptureConfig['tls'], timeoutMs = 5000): Promise<net.Socket> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port);
  const secure = url.protocol === 'tls:';
  const tlsOpts = secure ? await tlsFiles(t) : undefined;
  return new Promise((resolve, reject) => {
    const s = secure ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ...tlsOpts }) : net.connect({ host, port });
    const timer = setTimeout(() => s.destroy(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      reject(new SinkUnavailableError(`cannot connect to ${url.protocol}//${url.host}: ${err.message}`));
    };
    s.once('error', fail);
    s.once(secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      s.off('error', fail);
      s.setKeepAlive(true, 10_000);
      s.setNoDelay(true);
      resolve(s);
    });
  });
}

async function tlsFiles(t: CaptureConfig['tls']): Promise<tls.ConnectionOptions> {
  const read = async (key: string, path: string | undefined) => {
    if (!path) return undefined;
    try {
      return await readFile(path);
    } catch (err) {
      // the path and the reason only: never the content
      throw new SinkUnavailableError(`capture_tls_${key} ${path}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
    }
  };
  return { ca: await read('cafile', t.cafile), cert: await read('certfile', t.certfile), key: await read('keyfile', t.keyfile) };
}
