/**
 * A real json_lines TCP receiver standing in for Logstash: syslog-ng (Debian's syslog-ng-core)
 * with a network() source, a json-parser and a file destination that keeps each line byte for byte
 * (the whole config is written below). Plain TCP, or TLS requiring a client certificate.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, tempDir, waitForPort, type Teardown } from '../helpers/broker.js';

export interface Receiver {
  port: number;
  out: string;
  /** Every line received so far (non-JSON lines are dropped by syslog-ng's json-parser). */
  lines(): string[];
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface ReceiverTls {
  cert: string;
  key: string;
  ca: string;
}

function config(port: number, out: string, tls?: ReceiverTls): string {
  const transport = tls
    ? `transport("tls") tls(key-file("${tls.key}") cert-file("${tls.cert}") ca-file("${tls.ca}") peer-verify(required-trusted))`
    : 'transport("tcp")';
  return `@version: 3.38
options { stats_freq(0); flush_lines(0); };
source s_json { network(ip("127.0.0.1") port(${port}) ${transport} flags(no-parse) log-msg-size(1048576) max-connections(10)); };
parser p_json { json-parser(prefix(".json.")); };
destination d_raw { file("${out}" template("$MESSAGE\\n")); };
log { source(s_json); parser(p_json); destination(d_raw); };
`;
}

export async function startReceiver(t: Teardown, tls?: ReceiverTls): Promise<Receiver> {
  const dir = tempDir('mqprobe-syslog-ng-');
  const port = await freePort();
  const out = join(dir, 'received.ndjson');
  const conf = join(dir, 'syslog-ng.conf');
  writeFileSync(conf, config(port, out, tls));
  mkdirSync(join(dir, 'state'), { recursive: true });
  let child: ChildProcess | undefined;
  let log = '';
  const start = async () => {
    const c = spawn('syslog-ng', syslogNgArgs(conf, join(dir, 'state')), { stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout!.on('data', (d) => (log += d));
    c.stderr!.on('data', (d) => (log += d));
    child = c;
    try {
      await waitForPort(port, 15_000);
    } catch (err) {
      c.kill('SIGKILL');
      throw new Error(`syslog-ng did not listen on ${port}: ${(err as Error).message}\n${log}`);
    }
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });
  };
  t.teardown(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
  });
  await start();
  return {
    port,
    out,
    lines: () => (existsSync(out) ? readFileSync(out, 'utf8').split('\n').filter(Boolean) : []),
    stop,
    start,
  };
}

/** syslog-ng in the foreground, unprivileged, with its persist, pid and control files in `stateDir`. */
export function syslogNgArgs(conf: string, stateDir: string): string[] {
  return ['-f', conf, '-F', '--no-caps', '-R', join(stateDir, 'persist'), '-p', join(stateDir, 'pid'), '-c', join(stateDir, 'ctl')];
}
