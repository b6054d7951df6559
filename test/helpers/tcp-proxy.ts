import net from 'node:net';
import type { Teardown } from './broker.js';

export interface TcpProxy {
  port: number;
  /** Cuts the link: open connections are destroyed and new ones refused, as in a network partition. */
  cut(): Promise<void>;
  /** Accepts and forwards again on the same port. */
  heal(): Promise<void>;
}

/**
 * A loopback TCP forwarder to `targetPort` that a test can cut: one process's link to a peer goes
 * away while everything else keeps reaching it. Used instead of network namespaces, which tests
 * cannot create here.
 */
export async function startTcpProxy(t: Teardown, targetPort: number): Promise<TcpProxy> {
  const open = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(targetPort, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        open.delete(s);
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
  await listen(0);
  const port = (server.address() as net.AddressInfo).port;
  const proxy: TcpProxy = {
    port,
    async cut() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of open) s.destroy();
      });
    },
    heal: () => listen(port),
  };
  t.teardown(() => proxy.cut());
  return proxy;
}
