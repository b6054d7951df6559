/**
 * Starts a real Elasticsearch or OpenSearch for tests, from the distributions that
 * test/peers/elastic/pom.xml fetches from Maven Central (run `mvn -q -B -f test/peers/elastic/pom.xml
 * process-resources` once; this helper runs it when the unpacked distribution is missing).
 *
 * Both refuse to run as root, so as root the node runs as the unprivileged user `mqprobe-peer`
 * (created here when missing) through `runuser`. Each node gets its own temporary config, data and
 * log directories, free loopback ports, a 512 MB heap, and is killed in teardown.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, readdirSync, renameSync, rmSync, writeFileSync, mkdirSync, openSync, closeSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { repoRoot } from './paths.js';
import { tempDir } from './tmp.js';

/** The part of a tap Test this helper needs. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

export type SearchProduct = 'elasticsearch' | 'opensearch';

export interface SearchPeer {
  product: SearchProduct;
  version: string;
  /** http://127.0.0.1:PORT */
  url: string;
  /** Basic-auth user when security is on (Elasticsearch only). */
  auth?: { username: string; password: string };
  /** Stops the node (data kept); `start()` brings it back on the same port with the same data. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** The node's own log, for failure messages. */
  logTail(): string;
}

const PEERS_DIR = join(repoRoot, 'test', 'peers', 'elastic');
const RUN_USER = 'mqprobe-peer';
const JAVA_HOME_CANDIDATES = ['/usr/lib/jvm/java-17-openjdk-amd64', '/usr/lib/jvm/default-java'];

/** The unpacked distribution, fetched by Maven on first use. */
export function distribution(product: SearchProduct): { home: string; version: string } {
  const target = join(PEERS_DIR, 'target');
  const find = () => (existsSync(target) ? readdirSync(target).find((d) => d.startsWith(`${product}-`)) : undefined);
  let dir = find();
  if (!dir) {
    // Test files run in parallel: one fetch at a time, and the later ones find it done.
    mkdirSync(target, { recursive: true });
    const r = spawnSync('flock', [join(target, '.fetch.lock'), 'mvn', '-q', '-B', '-f', join(PEERS_DIR, 'pom.xml'), 'process-resources'], {
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`mvn could not fetch the ${product} distribution: ${r.stderr || r.stdout || r.error?.message}`);
    dir = find();
    if (!dir) throw new Error(`mvn ran but left no ${product}-* directory in ${target}`);
  }
  return { home: join(target, dir), version: dir.slice(product.length + 1) };
}

function runningAsRoot(): boolean {
  return process.getuid?.() === 0;
}

function ensureRunUser(): void {
  if (spawnSync('id', ['-u', RUN_USER]).status === 0) return;
  const r = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', RUN_USER], { encoding: 'utf8' });
  if (r.status !== 0 && spawnSync('id', ['-u', RUN_USER]).status !== 0) throw new Error(`useradd ${RUN_USER} failed: ${r.stderr}`);
}

function javaHome(): string {
  const home = process.env.JAVA_HOME ?? JAVA_HOME_CANDIDATES.find((d) => existsSync(join(d, 'bin', 'java')));
  if (!home) throw new Error('no JDK 17 found (apt-get install -y openjdk-17-jdk-headless)');
  return home;
}

/** Runs a command as the peer user when we are root, as ourselves otherwise. */
function asPeerUser(cmd: string, args: string[]): [string, string[]] {
  return runningAsRoot() ? ['runuser', ['-u', RUN_USER, '--', cmd, ...args]] : [cmd, args];
}

interface StartOptions {
  /** Elasticsearch only: turn security on with one superuser in the file realm (HTTP stays plain). */
  security?: boolean;
}

/**
 * The distribution as the peer user can read it: a clone under a private directory (/root is 0700)
 * is not, so it is copied once into a shared temporary cache.
 */
function readableByPeerUser(home: string): string {
  if (spawnSync('runuser', ['-u', RUN_USER, '--', 'test', '-r', join(home, 'lib')]).status === 0) return home;
  const cached = join(tmpdir(), 'mqprobe-peer-dists', basename(home));
  if (!existsSync(join(cached, 'lib'))) {
    mkdirSync(dirname(cached), { recursive: true, mode: 0o755 });
    cpSync(home, `${cached}.partial`, { recursive: true });
    spawnSync('chmod', ['-R', 'a+rX', dirname(cached)]);
    renameSync(`${cached}.partial`, cached);
  }
  return cached;
}

export async function startSearchPeer(t: Teardown, product: SearchProduct, opts: StartOptions = {}): Promise<SearchPeer> {
  const dist = distribution(product);
  const version = dist.version;
  if (runningAsRoot()) ensureRunUser();
  const home = runningAsRoot() ? readableByPeerUser(dist.home) : dist.home;
  const dir = tempDir(`mqprobe-${product}-`);
  const conf = join(dir, 'config');
  cpSync(join(home, 'config'), conf, { recursive: true });
  for (const d of ['data', 'logs', 'tmp']) mkdirSync(join(dir, d));
  const security = product === 'elasticsearch' ? !!opts.security : false;
  // Port 0 lets the node pick free ports and write them to logs/*.ports (no race with other tests);
  // after the first start they are pinned, so a restarted node comes back where clients expect it.
  const settings = (ports = { http: 0, transport: 0 }) => [
    'cluster.name: mqprobe-test',
    'node.name: n1',
    'discovery.type: single-node',
    'network.host: 127.0.0.1',
    `http.port: ${ports.http}`,
    `transport.port: ${ports.transport}`,
    'node.portsfile: true',
    `path.data: ${join(dir, 'data')}`,
    `path.logs: ${join(dir, 'logs')}`,
    // CI disks can be nearly full; a watermark would turn the test indices read-only.
    'cluster.routing.allocation.disk.threshold_enabled: false',
    ...(product === 'elasticsearch'
      ? [`xpack.security.enabled: ${security}`, 'xpack.security.http.ssl.enabled: false', 'xpack.security.transport.ssl.enabled: false']
      : []),
  ];
  const writeSettings = (ports?: { http: number; transport: number }) =>
    writeFileSync(join(conf, `${product}.yml`), settings(ports).join('\n') + '\n');
  writeSettings();
  // The shipped jvm.options write GC logs and heap dumps relative to the distribution (root-owned);
  // drop those lines and pin a small heap.
  const jvmOptions = readFileSync(join(conf, 'jvm.options'), 'utf8')
    .split('\n')
    .filter((l) => !/Xlog|Xloggc|HeapDump|ErrorFile|-Xm[sx]/.test(l));
  writeFileSync(join(conf, 'jvm.options'), [...jvmOptions, '-Xms512m', '-Xmx512m', ''].join('\n'));
  if (runningAsRoot()) spawnSync('chown', ['-R', RUN_USER, dir]);

  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: dir, LANG: 'C.UTF-8' };
  if (product === 'elasticsearch') Object.assign(env, { ES_PATH_CONF: conf, ES_TMPDIR: join(dir, 'tmp'), ES_JAVA_HOME: javaHome() });
  else Object.assign(env, { OPENSEARCH_PATH_CONF: conf, OPENSEARCH_TMPDIR: join(dir, 'tmp'), OPENSEARCH_JAVA_HOME: javaHome() });

  let auth: SearchPeer['auth'];
  if (security) {
    auth = { username: 'mqprobe-test', password: `pw-${process.pid}-${Date.now()}` };
    const [cmd, args] = asPeerUser(join(home, 'bin', 'elasticsearch-users'), [
      'useradd',
      auth.username,
      '-p',
      auth.password,
      '-r',
      'superuser',
    ]);
    const r = spawnSync(cmd, args, { env, encoding: 'utf8', cwd: dir });
    if (r.status !== 0) throw new Error(`elasticsearch-users failed: ${r.stderr}`);
  }

  let url = '';
  const logFile = join(dir, 'console.log');
  let child: ChildProcess | undefined;

  const start = async () => {
    const out = openSync(logFile, 'a');
    const [cmd, args] = asPeerUser(join(home, 'bin', product), []);
    // Own process group, so teardown can kill the launcher and the server JVM together.
    child = spawn(cmd, args, { env, cwd: dir, detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    const alive = () => child?.exitCode === null && child.signalCode === null;
    try {
      if (!url) {
        const ports = { http: await portsFile(dir, 'http', alive), transport: await portsFile(dir, 'transport', alive) };
        url = `http://127.0.0.1:${ports.http}`;
        writeSettings(ports);
      }
      await waitHealthy(url, auth, alive);
    } catch (e) {
      throw new Error(`${product} did not come up: ${(e as Error).message}\n${logTail()}`);
    }
  };

  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    killGroup(c, 'SIGTERM');
    const timer = setTimeout(() => killGroup(c, 'SIGKILL'), 20_000);
    await gone;
    clearTimeout(timer);
    // runuser exits when the JVM does; make sure no server JVM of the group survives it.
    killGroup(c, 'SIGKILL');
  };

  const logTail = () => {
    try {
      return readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n');
    } catch {
      return '(no log)';
    }
  };

  t.teardown(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await start();
  return { product, version, url, auth, stop, start, logTail };
}

/** The port a node wrote to logs/<kind>.ports once it bound it. */
async function portsFile(dir: string, kind: 'http' | 'transport', alive: () => boolean, timeoutMs = 90_000): Promise<number> {
  const file = join(dir, 'logs', `${kind}.ports`);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error('the node exited');
    const m = existsSync(file) ? /:(\d+)\s*$/m.exec(readFileSync(file, 'utf8').split('\n')[0] ?? '') : null;
    if (m) return Number(m[1]);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no ${file} after ${timeoutMs} ms`);
}

function killGroup(c: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-c.pid!, signal);
  } catch {
    // the group is already gone
  }
}

async function waitHealthy(url: string, auth: SearchPeer['auth'], alive: () => boolean, timeoutMs = 90_000): Promise<void> {
  const headers: Record<string, string> = auth
    ? { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` }
    : {};
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (!alive()) throw new Error('the node exited');
    try {
      const res = await fetch(`${url}/_cluster/health?wait_for_status=yellow&timeout=5s`, { headers });
      if (res.ok) return;
      last = `${res.status} ${await res.text()}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${url} not healthy after ${timeoutMs} ms: ${last}`);
}
