import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, tempDir, waitForPort, type Teardown } from './broker.js';

export interface RedisPeer {
  port: number;
  url: string;
  /** Kills it (SIGKILL: no final save; with appendonly what was acknowledged is in the AOF already). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory (after stop). */
  start(): Promise<void>;
  /** Sends a signal, e.g. SIGSTOP / SIGCONT to freeze and thaw it. */
  signal(sig: NodeJS.Signals): void;
}

/**
 * A real redis-server on a free loopback port, killed in teardown. Without options nothing is
 * persisted; `appendonly` keeps an append-only file in a temporary directory that survives stop/start.
 */
export async function startRedis(t: Teardown, opts: { appendonly?: boolean } = {}): Promise<RedisPeer> {
  const port = await freePort();
  const dir = tempDir();
  let child: ChildProcess | undefined;
  const peer: RedisPeer = {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    async start() {
      child = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, '--appendonly', opts.appendonly ? 'yes' : 'no'],
        { stdio: 'ignore' },
      );
      await waitForPort(port);
    },
    async stop() {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const c = child;
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
      });
    },
    signal(sig) {
      child?.kill(sig);
    },
  };
  await peer.start();
  t.teardown(() => peer.stop());
  return peer;
}
