import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, waitForPort, type Teardown } from './broker.js';

export interface RedisPeer {
  port: number;
  url: string;
  stop(): Promise<void>;
  /** Starts it again on the same port (after stop). */
  start(): Promise<void>;
}

/** A real redis-server on a free loopback port, no persistence; killed in teardown. */
export async function startRedis(t: Teardown): Promise<RedisPeer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const peer: RedisPeer = {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    async start() {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      await waitForPort(port);
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      const c = child;
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
      });
    },
  };
  await peer.start();
  t.teardown(() => peer.stop());
  return peer;
}
