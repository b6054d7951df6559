import t from 'tap';
import type net from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { connectClient } from '../helpers/mqtt.js';
import { makePki } from '../helpers/certs.js';
import { loadConfig } from '../../app/config.js';

/**
 * Whether Node applied TCP_NODELAY to the broker's end of a client connection. Node keeps the state
 * it set on the socket handle under its internal kSetNoDelay symbol (there is no public getter); a
 * TLS connection's TCP socket is the TLSSocket's `_parent`.
 */
function noDelayOf(sock: net.Socket): boolean {
  const tcp = (sock as net.Socket & { _parent?: net.Socket })._parent ?? sock;
  const key = Object.getOwnPropertySymbols(tcp).find((s) => s.description === 'kSetNoDelay');
  if (!key) throw new Error('this Node keeps no kSetNoDelay state on sockets');
  return (tcp as unknown as Record<symbol, boolean>)[key];
}

const pki = makePki();

async function serverSockets(conf: string, tls: boolean): Promise<boolean[]> {
  const { port, broker } = await startTestBroker(t, conf);
  const c = await connectClient(
    t,
    `${tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    tls ? { ca: readFileSync(pki.caCert), clientId: 'nd' } : { clientId: 'nd' },
  );
  const result = Object.values((broker.aedes as unknown as { clients: Record<string, { conn: net.Socket }> }).clients).map((cl) =>
    noDelayOf(cl.conn),
  );
  c.end(true);
  return result;
}

t.test('set_tcp_nodelay: on by default (unlike Mosquitto), off when set false, on TCP and TLS listeners', async (t) => {
  const tlsLines = `certfile ${pki.serverCert}\nkeyfile ${pki.serverKey}\n`;
  t.same(await serverSockets('listener 0 127.0.0.1\nallow_anonymous true\n', false), [true], 'default: Nagle off');
  t.same(await serverSockets('set_tcp_nodelay false\nlistener 0 127.0.0.1\nallow_anonymous true\n', false), [false], 'false: Nagle on');
  t.same(await serverSockets(`listener 0 127.0.0.1\nallow_anonymous true\n${tlsLines}`, true), [true], 'tls listener');
});

t.test('set_tcp_nodelay takes true or false only', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'bad.conf');
  writeFileSync(file, 'set_tcp_nodelay yes\n');
  t.throws(() => loadConfig(file), /set_tcp_nodelay/);
  writeFileSync(file, 'set_tcp_nodelay false\n');
  t.equal(loadConfig(file).setTcpNodelay, false);
  writeFileSync(file, 'set_tcp_nodelay true\n');
  t.equal(loadConfig(file).setTcpNodelay, true);
});
