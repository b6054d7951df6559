import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startTestBroker, waitForPort, type Teardown } from './broker.js';
import { tempDir } from './tmp.js';

export interface MosquittoPeer {
  port: number;
  url: string;
  /** Folder of the config file (0755: Mosquitto, started as root, reads it as user `mosquitto`). */
  dir: string;
  confFile: string;
  /** Everything Mosquitto printed so far, over all its runs. */
  output(): string;
  /** Kills it (SIGKILL, as a crash; SIGTERM lets it save its persistence file) and resolves once it is gone. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port with the same config (after stop). */
  start(): Promise<void>;
  /** SIGHUP: Mosquitto re-reads its password and ACL files. */
  reload(): void;
  /** Sends a signal to the running process (SIGSTOP/SIGCONT: a remote that takes packets and answers none). */
  signal(signal: NodeJS.Signals): void;
  /** The running process's id (for /proc/<pid>/stat). */
  pid(): number | undefined;
}

/**
 * The real Debian Mosquitto on a free loopback port: `listener <port> 127.0.0.1` followed by the
 * given config text, run in the foreground (`-v` so its log shows connects and refusals). Files the
 * config names must be readable by user `mosquitto` (write them into `dir`, or a tempDir()).
 * Killed in teardown.
 */
export async function startMosquitto(
  t: Teardown,
  conf = 'allow_anonymous true\n',
  opts: { dir?: string; /** false: no `-v`, so the config's own log_type lines apply (-v means log_type all) */ verbose?: boolean } = {},
): Promise<MosquittoPeer> {
  const dir = opts.dir ?? tempDir('mqprobe-mosquitto-');
  const port = await freePort();
  const confFile = join(dir, `mosquitto-${port}.conf`);
  writeFileSync(confFile, `listener ${port} 127.0.0.1\n${conf}`);
  chmodSync(confFile, 0o644);
  let child: ChildProcess | undefined;
  let out = '';
  const peer: MosquittoPeer = {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    dir,
    confFile,
    output: () => out,
    async start() {
      const c = spawn('mosquitto', [...(opts.verbose === false ? [] : ['-v']), '-c', confFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      c.stdout!.on('data', (d) => (out += d));
      c.stderr!.on('data', (d) => (out += d));
      const exited = new Promise<never>((_, reject) =>
        c.once('exit', (code) => reject(new Error(`mosquitto exited (${code}) before listening:\n${out}`))),
      );
      exited.catch(() => undefined);
      await Promise.race([waitForPort(port), exited]);
    },
    stop: (signal) => killAndWait(child, signal),
    reload() {
      child?.kill('SIGHUP');
    },
    signal: (signal) => void child?.kill(signal),
    pid: () => child?.pid,
  };
  t.teardown(() => peer.stop());
  await peer.start();
  return peer;
}

/** The real Mosquitto taking only `user` with `password` (a password file written by the real mosquitto_passwd). */
export async function startMosquittoWithUser(t: Teardown, user: string, password: string): Promise<MosquittoPeer> {
  const dir = tempDir('mqprobe-mosquitto-user-');
  chmodSync(dir, 0o755);
  const passwd = join(dir, 'passwd');
  execFileSync('mosquitto_passwd', ['-b', '-c', passwd, user, password]);
  chmodSync(passwd, 0o644);
  return startMosquitto(t, `allow_anonymous false\npassword_file ${passwd}\n`, { dir });
}

/** SIGKILL (or the given signal) for a child process (any peer a test started), resolved once it is gone. */
export async function killAndWait(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/**
 * Mosquitto 2.0.11 and mqprobe (in this process) side by side with the same config lines after their
 * listener: [name, mqtt url] of each, for a test that runs the same steps against both.
 */
export async function mosquittoAndMqprobe(t: Teardown, conf: string): Promise<[name: string, url: string][]> {
  const mosquitto = await startMosquitto(t, conf);
  const mqprobe = await startTestBroker(t, `listener 0 127.0.0.1\n${conf}`);
  return [
    ['Mosquitto', mosquitto.url],
    ['mqprobe', mqprobe.mqttUrl],
  ];
}
