import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import pino from 'pino';
import { loadConfig } from '../../app/config.js';
import { startBroker, type RunningBroker } from '../../app/assemble.js';
import { REDACT_PATHS, keepLastName } from '../../broker/logger.js';
import { repoRoot } from './paths.js';
import { tempDir } from './tmp.js';

export { tempDir };

/** The part of a tap Test these helpers need. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface TestBroker {
  broker: RunningBroker;
  port: number;
  httpPort?: number;
  mqttUrl: string;
  dir: string;
  confFile: string;
  /** Everything the broker logged (debug level), for leak checks. */
  logFile: string;
}

export const ANONYMOUS_CONF = 'listener 0 127.0.0.1\nallow_anonymous true\n';

/**
 * Starts mqprobe in this process from config text (use port 0 for free ports), logging at
 * debug level to a file; stopped in teardown.
 */
export async function startTestBroker(t: Teardown, conf = ANONYMOUS_CONF, opts: { dir?: string } = {}): Promise<TestBroker> {
  const dir = opts.dir ?? tempDir();
  const confFile = join(dir, 'mqprobe.conf');
  writeFileSync(confFile, conf);
  const config = loadConfig(confFile);
  const logFile = join(dir, 'broker.log');
  const log = pino(
    { level: 'debug', redact: { paths: REDACT_PATHS, censor: '[redacted]' }, onChild: keepLastName },
    pino.destination({ dest: logFile, sync: true }),
  );
  const broker = await startBroker(config, { log });
  t.teardown(() => broker.close());
  const port = broker.ports[0];
  return { broker, port, httpPort: broker.httpPort, mqttUrl: `mqtt://127.0.0.1:${port}`, dir, confFile, logFile };
}

/** Ports handed out by freePort in this process (a test may ask twice before it binds either). */
const handedOut = new Set<number>();

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A free TCP port on loopback, for a process or listener that must be told its port before it starts. It is
 * taken below Linux's ephemeral range (32768-60999): a listener bound to port 0 (the brokers' own in most
 * tests) draws from that range, so it cannot take this port between the check and its use. (A port from
 * `listen(0)` could: the osquery beat then found its port held by the broker's HTTP listener.)
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (handedOut.has(port) || !(await canBind(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('no free loopback port found in 20000-31999');
}

/**
 * Waits until something accepts TCP connections on the port. A minute by default: on a loaded machine
 * (CI, or the suite beside a benchmark) the command-line broker has taken more than 15 s to listen.
 */
export async function waitForPort(port: number, timeoutMs = 60_000, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, host, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface BrokerProcess {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/** Runs the real CLI (`mqprobe …`) from source as a child process; killed in teardown. */
export function spawnCli(t: Teardown, args: string[], env: NodeJS.ProcessEnv = {}): BrokerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'app', 'cli.ts'), ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, output: () => out, exited };
}
