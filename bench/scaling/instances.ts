/**
 * The model's one- and two-instance points (docs/scaling.md, "Measured: one and two instances"):
 * four loads against three layouts, in one run, broker CPU per message from /proc.
 *
 *   npx tsx bench/scaling/instances.ts [--rounds 1] [--seconds 4] [--loads A,C,T,E] [--layouts 1,1r,2r] [--storm 2000] [--rate 0]
 *
 * Layouts: `1` one mqprobe, no Redis; `1r` one mqprobe on Redis (`persistence_redis_url`: Redis
 * persistence and the `mqprobe:messages` stream emitter); `2r` two mqprobe processes on one Redis.
 * The instances listen on ports of their own so that the load places each client on the instance it
 * wants. `2c` (not in the default list) is the same two on one port behind bench/scaling/cluster.ts,
 * whose primary accepts every connection and hands it to a worker (its CPU is the last of "per
 * instance"); there the primary, not the load, decides where a client lands. Every mqprobe is the bench's
 * `mqprobe` variant (capture and detection off), started with the broker's Node flags.
 *
 * Loads (QoS 0, 64-byte payloads, closed loop: at most 1,000 messages per publisher not yet seen by
 * every subscriber of it; `--rate R`: open loop, R publishes/s over all publishers): A fan-in 4 → 1 (publishers alternate between the instances, the
 * subscriber is on the first: half the publishes cross); C fan-out 1 → 50 (the publisher on the
 * first, subscribers alternate); T telemetry, 8 publishers each to its own subscriber on `bench/i`
 * (pairs 0–3 on one instance, 4–7 crossing); E a connect storm (clean sessions, 100 handshakes in
 * flight, clients alternating between the instances; CPU over the storm ÷ clients).
 *
 * Brokers and Redis are pinned to CPU 0, this process (the load) to CPU 1, when there are two CPUs.
 * Every message is counted: the exit code is 1 when one was lost, duplicated or reordered.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';
import { connectClient, RawClient } from '../harness/load/client.js';
import { refillWindows } from '../harness/load/flow.js';
import { encodeConnect, encodeSubscribe, PACKET, PublishTemplate } from '../harness/load/packets.js';
import { cpuTicks } from '../harness/proc.js';
import {
  choosePinning,
  freePort,
  nodeCommand,
  pinned,
  pinSelf,
  start,
  stop,
  tail,
  waitListening,
  type Started,
} from '../harness/processes.js';

const PAYLOAD_BYTES = 64;
const WINDOW = 1000;
const CLOCK_TICKS = 100;

interface Layout {
  id: string;
  instances: number;
  redis: boolean;
  /** On one port behind bench/scaling/cluster.ts (the clients land where its primary puts them). */
  cluster?: boolean;
}
const LAYOUTS: Layout[] = [
  { id: '1', instances: 1, redis: false },
  { id: '1r', instances: 1, redis: true },
  { id: '2r', instances: 2, redis: true },
  { id: '2c', instances: 2, redis: true, cluster: true },
];

/** A flow load: where each publisher and subscriber sits (instance index, taken modulo the instances). */
interface FlowLoad {
  id: string;
  title: string;
  pubs: { instance: number; topic: string }[];
  subs: { instance: number; filter: string; from: number[] }[];
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const FLOW_LOADS: FlowLoad[] = [
  {
    id: 'A',
    title: 'fan-in 4 → 1',
    pubs: range(4).map((i) => ({ instance: i % 2, topic: `bench/${i}` })),
    subs: [{ instance: 0, filter: 'bench/#', from: range(4) }],
  },
  {
    id: 'C',
    title: 'fan-out 1 → 50',
    pubs: [{ instance: 0, topic: 'bench/0' }],
    subs: range(50).map((s) => ({ instance: s % 2, filter: 'bench/#', from: [0] })),
  },
  {
    id: 'T',
    title: 'telemetry, 8 pairs, 4 crossing',
    pubs: range(8).map((i) => ({ instance: i % 2, topic: `bench/${i}` })),
    subs: range(8).map((i) => ({ instance: i < 4 ? i % 2 : (i + 1) % 2, filter: `bench/${i}`, from: [i] })),
  },
];

interface Options {
  rounds: number;
  seconds: number;
  loads: string[];
  layouts: string[];
  storm: number;
  /** Open loop instead: this many publishes per second over all publishers, in 1 ms ticks (0: closed loop). */
  rate: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rounds: 1, seconds: 4, loads: ['A', 'C', 'T', 'E'], layouts: ['1', '1r', '2r'], storm: 2000, rate: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (k === '--rounds') o.rounds = Number(v);
    else if (k === '--seconds') o.seconds = Number(v);
    else if (k === '--storm') o.storm = Number(v);
    else if (k === '--rate') o.rate = Number(v);
    else if (k === '--loads') o.loads = v.split(',');
    else if (k === '--layouts') o.layouts = v.split(',');
    else throw new Error(`unknown option ${k}`);
  }
  for (const l of o.loads) if (l !== 'E' && !FLOW_LOADS.some((f) => f.id === l)) throw new Error(`unknown load ${l}`);
  for (const l of o.layouts) if (!LAYOUTS.some((x) => x.id === l)) throw new Error(`unknown layout ${l}`);
  return o;
}

interface Deployment {
  ports: number[];
  brokers: number[];
  redis?: number;
  /** The cluster primary (layout 2c). */
  primary?: number;
  stop(): Promise<void>;
}

/** Resolves with the worker pids once the cluster launcher says they are all listening. */
async function clusterWorkers(p: Started, logFile: string): Promise<number[]> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline && p.child.exitCode === null; await sleep(100)) {
    const m = /^workers (\S+)$/m.exec(readFileSync(logFile, 'utf8'));
    if (m) return m[1].split(',').map(Number);
  }
  throw new Error(`the cluster launcher did not start its workers\n${tail(logFile)}`);
}

async function deploy(layout: Layout, dir: string, cpu: string | undefined, name: string): Promise<Deployment> {
  const started: Started[] = [];
  const logFile = join(dir, `${name}.log`);
  let redisUrl: string | undefined;
  try {
    if (layout.redis) {
      const port = await freePort();
      const redis = start(
        pinned(cpu, ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']),
        {
          logFile,
        },
      );
      started.push(redis);
      await waitListening(port, redis);
      redisUrl = `redis://127.0.0.1:${port}/0`;
    }
    const confLines = ['allow_anonymous true', 'detect off', ...(redisUrl ? [`persistence_redis_url ${redisUrl}`] : [])];
    if (layout.cluster) {
      const port = await freePort();
      const conf = join(dir, `${name}.conf`);
      writeFileSync(conf, [`listener ${port} 127.0.0.1`, ...confLines].join('\n') + '\n');
      const launcher = start(pinned(cpu, nodeCommand('bench/scaling/cluster', [String(layout.instances), '-c', conf])), { logFile });
      started.push(launcher);
      const workers = await clusterWorkers(launcher, logFile);
      return {
        ports: [port],
        brokers: workers,
        redis: started[0].child.pid,
        primary: launcher.child.pid,
        stop: () =>
          stop(launcher, 'SIGTERM')
            .then(() => stop(started[0]))
            .then(() => undefined),
      };
    }
    const ports: number[] = [];
    for (let i = 0; i < layout.instances; i++) {
      const port = await freePort();
      const conf = join(dir, `${name}-${i}.conf`);
      writeFileSync(conf, [`listener ${port} 127.0.0.1`, ...confLines].join('\n') + '\n');
      const broker = start(pinned(cpu, nodeCommand('app/cli', ['-c', conf], BROKER_NODE_FLAGS)), { logFile });
      started.push(broker);
      await waitListening(port, broker, 60_000).catch((err: Error) => {
        throw new Error(`${name}: mqprobe ${i} did not start: ${err.message}\n${tail(logFile)}`);
      });
      ports.push(port);
    }
    const pids = started.map((s) => s.child.pid!);
    return {
      ports,
      brokers: layout.redis ? pids.slice(1) : pids,
      redis: layout.redis ? pids[0] : undefined,
      stop: () => Promise.all(started.reverse().map((s) => stop(s))).then(() => undefined),
    };
  } catch (err) {
    await Promise.all(started.map((s) => stop(s)));
    throw err;
  }
}

const cpuSeconds = (pid: number) => (cpuTicks(pid) ?? NaN) / CLOCK_TICKS;
/** CPU seconds each process of the deployment uses from now until the returned function is called. */
function meter(d: Deployment): () => { brokerCpu: number[]; redisCpu?: number } {
  const pids = [...d.brokers, ...(d.primary ? [d.primary] : [])];
  const at0 = pids.map(cpuSeconds);
  const redis0 = d.redis ? cpuSeconds(d.redis) : 0;
  return () => ({
    brokerCpu: pids.map((pid, i) => cpuSeconds(pid) - at0[i]),
    redisCpu: d.redis ? cpuSeconds(d.redis) - redis0 : undefined,
  });
}

const selfSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

interface Measured {
  load: string;
  layout: string;
  /** Messages delivered (or clients connected) per second in the window. */
  rate: number;
  /** Messages (or clients) in the window. */
  count: number;
  expected: number;
  delivered: number;
  lost: number;
  misordered: number;
  /** CPU seconds in the window: each broker, Redis, the load generator. */
  brokerCpu: number[];
  redisCpu?: number;
  loadCpu: number;
  loadavg: number[];
}

async function runFlow(load: FlowLoad, d: Deployment, o: Options, prefix: string): Promise<Omit<Measured, 'load' | 'layout'>> {
  const portOf = (instance: number) => d.ports[instance % d.ports.length];
  const seen = load.subs.map(() => new Float64Array(load.pubs.length).fill(-1));
  let delivered = 0;
  let misordered = 0;
  let pump = () => undefined as void;
  const subs = await Promise.all(
    load.subs.map(async (s, k) => {
      const c = await connectClient(portOf(s.instance), encodeConnect({ clientId: `${prefix}s${k}` }));
      const granted = await c.request(encodeSubscribe(s.filter, 0), PACKET.SUBACK);
      if (granted !== 0) throw new Error(`subscription to ${s.filter} granted ${granted}`);
      c.onPacket((type, _flags, buf, _start, end) => {
        if (type !== PACKET.PUBLISH) return;
        const p = end - PAYLOAD_BYTES;
        const pub = buf.readUInt32LE(p);
        const seq = buf.readUInt32LE(p + 4);
        if (seq > seen[k][pub]) seen[k][pub] = seq;
        else misordered++;
        delivered++;
      });
      c.afterChunk = () => pump();
      return c;
    }),
  );
  // subscriptions on one instance reach the others through Redis
  if (d.ports.length > 1) await sleep(500);
  const pubs = await Promise.all(
    load.pubs.map(async (p, i) => ({
      client: await connectClient(portOf(p.instance), encodeConnect({ clientId: `${prefix}p${i}` })),
      template: new PublishTemplate(p.topic, 0, PAYLOAD_BYTES, i),
      sent: 0,
      blocked: false,
      readers: load.subs.map((s, k) => (s.from.includes(i) ? k : -1)).filter((k) => k >= 0),
    })),
  );
  type Pub = (typeof pubs)[number];
  /** Writes `n` messages in one buffer; false when the socket asks to wait for 'drain'. */
  const send = (pub: Pub, n: number) => {
    const out = Buffer.allocUnsafe(n * pub.template.bytes.length);
    let at = 0;
    for (let m = 0; m < n; m++) at = pub.template.writeTo(out, at, pub.sent++, 0);
    return pub.client.socket.write(out);
  };
  let sending = true;
  const tStart = performance.now();
  // open loop: each publisher sends its share of the rate every millisecond
  const ticker =
    o.rate > 0
      ? setInterval(() => {
          const due = ((performance.now() - tStart) * o.rate) / 1000 / pubs.length;
          for (const pub of pubs) if (due - pub.sent >= 1) send(pub, Math.floor(due - pub.sent));
        }, 1)
      : undefined;
  const minSeen = (i: number) => {
    let m = Infinity;
    for (const k of pubs[i].readers) m = Math.min(m, seen[k][i]);
    return m;
  };
  if (!ticker)
    pump = () => {
      if (sending) refillWindows(pubs, minSeen, WINDOW, send, pump);
    };
  pump();
  await sleep(1000);
  const cpuUsed = meter(d);
  const self0 = selfSeconds();
  const d0 = delivered;
  const t0 = performance.now();
  await sleep(o.seconds * 1000);
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuUsed();
  const loadCpu = selfSeconds() - self0;
  const count = delivered - d0;
  sending = false;
  clearInterval(ticker);
  const expected = pubs.reduce((n, p) => n + p.sent * p.readers.length, 0);
  for (let last = -1, quiet = 0; delivered < expected && quiet < 3000; quiet = delivered === last ? quiet + 50 : 0) {
    last = delivered;
    await sleep(50);
  }
  for (const c of [...subs, ...pubs.map((p) => p.client)]) c.socket.destroy();
  return {
    rate: count / wall,
    count,
    expected,
    delivered,
    lost: Math.max(0, expected - delivered),
    misordered,
    ...cpu,
    loadCpu,
    loadavg: loadavg(),
  };
}

async function runStorm(clients: number, d: Deployment, prefix: string): Promise<Omit<Measured, 'load' | 'layout'>> {
  const cpuUsed = meter(d);
  const self0 = selfSeconds();
  const t0 = performance.now();
  const open: RawClient[] = [];
  let connected = 0;
  let next = 0;
  const failures = new Set<string>();
  const one = async (): Promise<void> => {
    while (next < clients) {
      const i = next++;
      const c = new RawClient(d.ports[i % d.ports.length]);
      open.push(c);
      const rc = await c.request(encodeConnect({ clientId: `${prefix}c${i}` }), PACKET.CONNACK).catch((err: Error) => err.message);
      if (rc === 0) connected++;
      else failures.add(String(rc));
    }
  };
  await Promise.all(range(100).map(one));
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuUsed();
  const loadCpu = selfSeconds() - self0;
  for (const c of open) c.socket.destroy();
  if (failures.size) process.stderr.write(`storm: ${clients - connected} clients not connected: ${[...failures].join('; ')}\n`);
  return {
    rate: connected / wall,
    count: connected,
    expected: clients,
    delivered: connected,
    lost: clients - connected,
    misordered: 0,
    ...cpu,
    loadCpu,
    loadavg: loadavg(),
  };
}

const fmt = (n: number | undefined, digits = 2) => (n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(digits));

/** One table row: µs of CPU per message (ms per client for E), summed and per instance. */
function row(m: Measured): string {
  const per = m.load === 'E' ? 1e3 : 1e6;
  const sum = m.brokerCpu.reduce((a, b) => a + b, 0);
  const cells = [
    m.load,
    m.layout,
    Math.round(m.rate).toLocaleString('en-US'),
    `${m.lost}/${m.expected}${m.misordered ? ` (${m.misordered} misordered)` : ''}`,
    fmt((sum * per) / m.count),
    m.brokerCpu.map((c) => fmt((c * per) / m.count)).join(' + '),
    fmt(m.redisCpu === undefined ? undefined : (m.redisCpu * per) / m.count),
    fmt((m.loadCpu * per) / m.count),
    m.loadavg.map((l) => l.toFixed(1)).join(' '),
  ];
  return `| ${cells.join(' | ')} |`;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const pinning = choosePinning(true);
  pinSelf(pinning.load);
  const dir = mkdtempSync(join(tmpdir(), 'mqprobe-scaling-'));
  const results: Measured[] = [];
  process.stdout.write(
    `${o.rate ? `open loop, ${o.rate} publishes/s` : `closed loop, ${WINDOW} messages per publisher in flight`}; brokers and Redis on CPU ${pinning.broker ?? 'any'}, load on ${pinning.load ?? 'any'}; logs in ${dir}\n\n` +
      '| load | layout | delivered/s (connects/s) | lost/expected | broker CPU per message, µs (E: ms per client) | per instance | Redis | load generator | load average |\n' +
      '|---|---|---:|---:|---:|---:|---:|---:|---|\n',
  );
  for (let round = 1; round <= o.rounds; round++)
    for (const loadId of o.loads)
      for (const layout of LAYOUTS.filter((l) => o.layouts.includes(l.id))) {
        const name = `${loadId}-${layout.id}-r${round}`;
        const d = await deploy(layout, dir, pinning.broker, name);
        try {
          const flow = FLOW_LOADS.find((f) => f.id === loadId);
          const r = flow ? await runFlow(flow, d, o, `${name}-`) : await runStorm(o.storm, d, `${name}-`);
          const m = { load: loadId, layout: layout.id, ...r };
          results.push(m);
          process.stdout.write(`${row(m)}\n`);
        } finally {
          await d.stop();
        }
      }
  writeFileSync(join(dir, 'results.json'), JSON.stringify(results, null, 1));
  process.stdout.write(`\nevery figure as JSON: ${join(dir, 'results.json')}\n`);
  if (results.some((m) => m.lost || m.misordered)) process.exitCode = 1;
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
