/**
 * Prototype of "N engines on one port" (docs/scaling.md, The design): N unmodified mqprobe CLI
 * processes started as workers of Node's cluster module. Each worker's `server.listen` goes to
 * this primary, which owns the listening socket and hands accepted connections to the workers in
 * turn (round robin); the workers share subscriptions, retained messages and sessions through
 * Redis, so the config must have `persistence_redis_url` (checked here: without it each worker is
 * a broker of its own and a publish never crosses, which would be wrong silently).
 *
 *   npx tsx bench/scaling/cluster.ts <instances> -c mqprobe.conf
 *
 * Prints `workers <pid,pid,…>` once every worker is listening (the bench reads it) and each worker's
 * output lines prefixed with `[pid]`; forwards SIGTERM/SIGINT to the workers and exits when they have.
 */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';

const here = dirname(fileURLToPath(import.meta.url));
const fromSource = import.meta.url.endsWith('.ts');

function fail(message: string): never {
  process.stderr.write(`mqprobe cluster: ${message}\n`);
  process.exit(2);
}

const [countArg, ...cliArgs] = process.argv.slice(2);
const instances = Number(countArg);
if (!Number.isInteger(instances) || instances < 1 || instances > 64) fail(`instances must be 1 to 64, got "${countArg ?? ''}"`);
const confAt = cliArgs.indexOf('-c');
const conf = confAt >= 0 ? cliArgs[confAt + 1] : undefined;
if (!conf) fail('give the broker its config with -c FILE');
if (instances > 1 && !/^\s*persistence_redis_url\s+\S/m.test(readFileSync(conf, 'utf8')))
  fail(
    `${instances} instances need persistence_redis_url in ${conf}: without shared state a publish on one would not reach a subscriber on another`,
  );

cluster.setupPrimary({
  exec: resolve(here, '../../app', `cli.${fromSource ? 'ts' : 'js'}`),
  args: cliArgs,
  execArgv: [...BROKER_NODE_FLAGS, ...process.execArgv],
  stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
});

/** Each worker's output, line by line, prefixed with `[pid]`: which instance holds which client. */
function prefixLines(from: NodeJS.ReadableStream | null, pid: number, to: NodeJS.WritableStream): void {
  let rest = '';
  from?.setEncoding('utf8');
  from?.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    for (const line of lines) to.write(`[${pid}] ${line}\n`);
  });
  from?.on('end', () => rest && to.write(`[${pid}] ${rest}\n`));
}

const listening = new Set<number>();
let stopping = false;
for (let i = 0; i < instances; i++) {
  const worker = cluster.fork();
  prefixLines(worker.process.stdout, worker.process.pid!, process.stdout);
  prefixLines(worker.process.stderr, worker.process.pid!, process.stderr);
  worker.once('listening', () => {
    listening.add(worker.process.pid!);
    if (listening.size === instances) process.stdout.write(`workers ${[...listening].join(',')}\n`);
  });
}
cluster.on('exit', (worker, code, signal) => {
  if (!stopping) {
    // a broker that died is not replaced: the bench and the test must see it
    process.stderr.write(`mqprobe cluster: worker ${worker.process.pid} exited (${code ?? signal}); stopping the others\n`);
    stop('SIGTERM');
    process.exitCode = 1;
  }
  if (Object.keys(cluster.workers ?? {}).length === 0) process.exit();
});

function stop(signal: NodeJS.Signals): void {
  stopping = true;
  for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(signal);
}
for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, () => stop(s));
