/**
 * The "N engines on one port" prototype (bench/scaling/cluster.ts): two real mqprobe CLI processes
 * behind one port (Node's cluster module) on a real redis-server act as one broker. Which instance
 * holds a client is read from the instance's own log line (`[pid] … New client connected … as id`).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { MqttClient } from 'mqtt';
import { freePort, tempDir, type Teardown } from '../helpers/broker.js';
import { collect, connectClient, connectCollecting, until } from '../helpers/mqtt.js';
import { repoRoot } from '../helpers/paths.js';
import { startRedis } from '../helpers/redis.js';

interface Cluster {
  url: string;
  workers: number[];
  output(): string;
  /** The launcher's exit code. */
  exited: Promise<number | null>;
  /** The worker pid whose log says it accepted `clientId` (the n-th time it connected, from 1). */
  instanceOf(clientId: string, nth?: number): Promise<number>;
}

function launch(
  t: Teardown,
  instances: number,
  confLines: string[],
): { child: ReturnType<typeof spawn>; output: () => string; conf: string } {
  const conf = join(tempDir(), 'mqprobe.conf');
  writeFileSync(conf, `${confLines.join('\n')}\n`);
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'bench/scaling/cluster.ts'), String(instances), '-c', conf], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
  return { child, output: () => out, conf };
}

async function startCluster(t: Teardown, instances: number): Promise<Cluster> {
  const redis = await startRedis(t);
  const port = await freePort();
  const { child, output } = launch(t, instances, [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    `persistence_redis_url ${redis.url}`,
    'log_dest stdout',
    'detect off',
  ]);
  await until(() => /^workers /m.test(output()), 60_000, `the cluster's ${instances} workers listening\n${output()}`);
  const workers = /^workers (\S+)/m.exec(output())![1].split(',').map(Number);
  return {
    url: `mqtt://127.0.0.1:${port}`,
    workers,
    output,
    exited: new Promise((resolve) => child.once('exit', resolve)),
    async instanceOf(clientId, nth = 1) {
      const re = new RegExp(`^\\[(\\d+)\\] \\d+: New client connected from \\S+ as ${clientId} `, 'gm');
      await until(() => [...output().matchAll(re)].length >= nth, 10_000, `the log line of ${clientId}'s connection ${nth}`);
      return Number([...output().matchAll(re)][nth - 1][1]);
    },
  };
}

/** Connects clients named `${prefix}0`, `${prefix}1`, … until one lands on each instance; returns one per instance. */
async function onePerInstance(t: Teardown, c: Cluster, prefix: string): Promise<Map<number, { id: string; client: MqttClient }>> {
  const found = new Map<number, { id: string; client: MqttClient }>();
  for (let i = 0; found.size < c.workers.length && i < 20; i++) {
    const id = `${prefix}${i}`;
    const client = await connectClient(t, c.url, { clientId: id });
    const pid = await c.instanceOf(id);
    if (found.has(pid)) client.end(true);
    else found.set(pid, { id, client });
  }
  return found;
}

t.test('the launcher refuses a bad instance count or a missing config, naming it', async (t) => {
  for (const [args, message] of [
    [['0', '-c', 'x.conf'], 'instances must be 1 to 64, got "0"'],
    [['lots', '-c', 'x.conf'], 'instances must be 1 to 64, got "lots"'],
    [['2'], 'give the broker its config with -c FILE'],
  ] as const) {
    const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'bench/scaling/cluster.ts'), ...args], { cwd: repoRoot });
    let out = '';
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    t.equal(code, 2, `${args.join(' ')}: exit code 2`);
    t.match(out, message, `${args.join(' ')}: ${message}`);
  }
});

t.test('without persistence_redis_url, two instances are refused with a clear error', async (t) => {
  const port = await freePort();
  const { child, output, conf } = launch(t, 2, [`listener ${port} 127.0.0.1`, 'allow_anonymous true']);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.equal(code, 2, 'exit code 2');
  t.match(output(), `2 instances need persistence_redis_url in ${conf}`, 'names the missing key');
});

t.test('two mqprobe instances on one port and one Redis act as one broker: spread, crossing, retained, takeover', async (t) => {
  const c = await startCluster(t, 2);
  t.equal(c.workers.length, 2, 'two workers listening');

  const subs = await onePerInstance(t, c, 'sub-');
  t.equal(subs.size, 2, `clients spread over both instances (${[...subs.keys()].join(', ')})`);
  const [[pidA, subA], [pidB, subB]] = [...subs];
  const gotA = collect(subA.client);
  const gotB = collect(subB.client);
  await subA.client.subscribeAsync('cross/#', { qos: 1 });
  await subB.client.subscribeAsync('cross/#', { qos: 1 });
  await new Promise((r) => setTimeout(r, 300)); // subscriptions propagate through Redis

  const pubs = await onePerInstance(t, c, 'pub-');
  for (const [pid, p] of pubs) await p.client.publishAsync(`cross/${pid}`, `from ${pid}`, { qos: 1 });
  await until(() => gotA.length === 2 && gotB.length === 2, 10_000, 'every publish at both subscribers');
  for (const [pid, got] of [
    [pidA, gotA],
    [pidB, gotB],
  ] as const)
    t.same(
      got.map((m) => m.payload.toString()).sort(),
      [`from ${pidA}`, `from ${pidB}`].sort(),
      `the subscriber on ${pid} got both instances' publishes`,
    );

  // retained: published on A, read by a new subscriber on B
  await pubs.get(pidA)!.client.publishAsync('kept/one', 'retained on A', { qos: 1, retain: true });
  let reader: { client: MqttClient; got: ReturnType<typeof collect> } | undefined;
  for (let i = 0; !reader && i < 20; i++) {
    const r = await connectCollecting(t, c.url, { clientId: `reader-${i}` });
    if ((await c.instanceOf(`reader-${i}`)) === pidB) reader = r;
    else r.client.end(true);
  }
  t.ok(reader, 'a reader on B');
  await reader!.client.subscribeAsync('kept/#', { qos: 1 });
  await until(() => reader!.got.length === 1, 10_000, 'the retained message on B');
  t.same([reader!.got[0].payload.toString(), reader!.got[0].retain], ['retained on A', true], 'a retained message set on A is served by B');

  // session takeover: a later connection with the same client id on the other instance closes the older one
  let prev = await connectClient(t, c.url, { clientId: 'roamer' });
  let prevPid = await c.instanceOf('roamer', 1);
  let crossed = false;
  // later connections alternate between the workers; one on the same instance takes over locally
  for (let n = 2; n <= 10 && !crossed; n++) {
    const prevClosed = new Promise<void>((resolve) => prev.once('close', () => resolve()));
    // the previous connection's "connected" notice crosses Redis first (docs/deploy.md)
    await new Promise((r) => setTimeout(r, 300));
    const next = await connectClient(t, c.url, { clientId: 'roamer' });
    const pid = await c.instanceOf('roamer', n);
    await prevClosed;
    if (pid !== prevPid) {
      crossed = true;
      t.pass(`connection ${n} on ${pid} closed connection ${n - 1} on ${prevPid}`);
      t.equal(next.connected, true, 'the newer connection stays');
    }
    [prev, prevPid] = [next, pid];
  }
  t.ok(crossed, 'a later connection landed on the other instance within 10 tries');

  // a worker that dies is not replaced behind the clients' backs: the whole cluster stops, loudly
  process.kill(pidA, 'SIGKILL');
  t.equal(await c.exited, 1, 'the launcher exits 1 when a worker dies');
  t.match(c.output(), `worker ${pidA} exited (SIGKILL); stopping the others`, 'and names the worker');
});
