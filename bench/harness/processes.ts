/** Child processes of the harness: where the code lives, CPU pinning, start and stop. */
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** Run from TypeScript through tsx (tests, `npx tsx bench/run.ts`) or from the compiled dist/. */
export const fromSource = import.meta.url.endsWith('.ts');
/** The folder holding broker/, bench/… in the form being run: the repository itself, or dist/. */
export const codeRoot = resolve(here, '../..');
export const repoRoot = fromSource ? codeRoot : resolve(codeRoot, '..');

/** The command that runs one of our scripts (path relative to codeRoot, without extension) with Node. */
export function nodeCommand(script: string, args: string[] = [], nodeFlags: readonly string[] = []): string[] {
  return [
    process.execPath,
    ...nodeFlags,
    ...(fromSource ? ['--import', 'tsx'] : []),
    join(codeRoot, `${script}.${fromSource ? 'ts' : 'js'}`),
    ...args,
  ];
}

export interface Pinning {
  /** CPU list for the broker (taskset -c), or undefined when not pinned. */
  broker?: string;
  /** CPU list for the load generator, the json_lines receiver and the harness itself. */
  load?: string;
  /** Why there is no pinning, when there is none. */
  reason?: string;
}

/** Broker on the first CPU, everything else on the others, when taskset exists and there are two CPUs or more. */
export function choosePinning(wanted: boolean): Pinning {
  if (!wanted) return { reason: 'switched off (--no-pin)' };
  const n = cpus().length;
  if (n < 2) return { reason: `only ${n} CPU` };
  if (spawnSync('taskset', ['-V']).error) return { reason: 'taskset not found (util-linux)' };
  return { broker: '0', load: n === 2 ? '1' : `1-${n - 1}` };
}

/** Pins an already running process, all its threads (used for the harness itself). */
export function pinSelf(cpuList: string | undefined): void {
  if (cpuList) spawnSync('taskset', ['-a', '-p', '-c', cpuList, String(process.pid)], { stdio: 'ignore' });
}

export function pinned(cpuList: string | undefined, argv: string[]): string[] {
  return cpuList ? ['taskset', '-c', cpuList, ...argv] : argv;
}

export interface Started {
  child: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
}

/** Starts argv with stdout and stderr appended to `logFile` (and an IPC channel when asked). */
export function start(argv: string[], opts: { logFile: string; ipc?: boolean }): Started {
  const fd = openSync(opts.logFile, 'a');
  const stdio: StdioOptions = ['ignore', fd, fd, ...(opts.ipc ? (['ipc'] as const) : [])];
  const child = spawn(argv[0], argv.slice(1), { cwd: repoRoot, stdio });
  closeSync(fd);
  const exited = new Promise<void>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once('exit', () => r());
  });
  child.once('error', () => undefined);
  return { child, exited };
}

/** Signals a process and waits for it to exit, SIGKILL after `graceMs`. */
export async function stop(p: Started, signal: NodeJS.Signals = 'SIGKILL', graceMs = 20_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill(signal);
  if (signal === 'SIGKILL') return p.exited;
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(timer);
}

/** The last lines of a log file (for error messages). */
export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolvePort(port));
    });
  });
}

/** Resolves once something accepts connections on the port; rejects if `p` exits first or after the timeout. */
export async function waitListening(port: number, p: Started, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void p.exited.then(() => (gone = true));
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    if (gone) throw new Error(`exited (${p.child.exitCode ?? p.child.signalCode}) before listening on ${port}`);
    if (Date.now() > deadline) throw new Error(`not listening on ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
