import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitForPort, type Teardown } from '../helpers/broker.js';
import { fixture } from '../helpers/paths.js';

/** The fixture users' clear-text passwords, read from PASSWORDS.md beside the fixture file. */
export function fixturePasswords(): Record<string, string> {
  const md = readFileSync(fixture('mosquitto', 'PASSWORDS.md'), 'utf8');
  return Object.fromEntries([...md.matchAll(/^\s+- ([\w-]+): `([^`]+)`/gm)].map((m) => [m[1], m[2]]));
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end (killed in teardown if a test gives up on it). */
export function run(t: Teardown, cmd: string, args: string[], input?: string): Promise<RunResult> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<RunResult>((resolve, reject) => {
    child.once('error', reject);
    // a program may exit without reading its stdin
    child.stdin.on('error', (err: NodeJS.ErrnoException) => err.code !== 'EPIPE' && reject(err));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  child.stdin.end(input ?? '');
  return done;
}

async function writeConf(dir: string, conf: string, readable: string[]): Promise<{ port: number; file: string }> {
  const port = await freePort();
  const file = join(dir, `mosquitto-${port}.conf`);
  writeFileSync(file, `listener ${port} 127.0.0.1\n${conf}`);
  for (const f of [file, ...readable]) chmodSync(f, 0o644);
  return { port, file };
}

export interface RealMosquitto {
  port: number;
  output: () => string;
}

/**
 * Starts the real Mosquitto on a free loopback port with extra config lines. Started as root
 * it drops to the `mosquitto` user, so the config and the files it names are made readable
 * (the folder must be 0755: test/helpers/tmp.ts).
 */
export async function startMosquitto(t: Teardown, dir: string, conf: string, readable: string[] = []): Promise<RealMosquitto> {
  const { port, file } = await writeConf(dir, conf, readable);
  const child = spawn('mosquitto', ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`mosquitto exited (${code}): ${out}`))));
  await Promise.race([waitForPort(port), exited]);
  return { port, output: () => out };
}

/** Starts Mosquitto with a config that should be refused; resolves with its exit code and output. */
export async function mosquittoRefuses(t: Teardown, dir: string, conf: string, readable: string[] = []): Promise<RunResult> {
  const { file } = await writeConf(dir, conf, readable);
  return run(t, 'timeout', ['10', 'mosquitto', '-c', file]);
}
