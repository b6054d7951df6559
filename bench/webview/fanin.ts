/**
 * What open web views cost the broker: QoS 0 fan-in (4 publishers → 1 subscriber, 64-byte payloads,
 * as scenario A) against the real CLI in its own process, with no viewer and with 10 viewers. A
 * viewer does what an open page on the Clients tab does (bench/webview/viewers.ts, in a process of
 * its own, so that it does not slow the load generator). Each round is one
 * broker process measured in four windows, without and with the viewers (A B B A, then B A A B).
 * Detection and capture stay at their defaults for both (the view reads broker events, not capture).
 *
 *   npx tsx bench/webview/fanin.ts [--stream-only] [--rate=<msg/s>] [seconds per run=10] [rounds=3]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';
import { cpuTicks } from '../harness/proc.js';
import { freePort } from '../harness/processes.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const rateArg = process.argv.find((a) => a.startsWith('--rate='));
const args = process.argv.slice(2).filter((a) => a !== '--stream-only' && a !== rateArg);
const STREAM_ONLY = process.argv.includes('--stream-only');
/** `--rate=<msg/s>`: the publishers offer this many messages a second together instead of saturating. */
const RATE = rateArg ? Number(rateArg.slice('--rate='.length)) : undefined;
const RUN_S = Number(args[0] ?? 10);
const ROUNDS = Number(args[1] ?? 3);
const WARMUP_S = 2;
const VIEWERS = 10;
const BODY = Buffer.alloc(64, 'v');

/** `n` open views (bench/webview/viewers.ts) in their own process; resolves once they are open, with their closer. */
async function openViewers(httpPort: number, n: number): Promise<() => void> {
  if (n === 0) return () => undefined;
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(root, 'bench', 'webview', 'viewers.ts'),
      `http://127.0.0.1:${httpPort}`,
      String(n),
      ...(STREAM_ONLY ? ['--stream-only'] : []),
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((ready, fail) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && ready());
    child.once('exit', (code) => fail(new Error(`the viewers exited (${code})`)));
  });
  return () => child.kill('SIGKILL');
}

function mqttClient(url: string, clientId: string): Promise<MqttClient> {
  const c = mqtt.connect(url, { clientId, reconnectPeriod: 0 });
  return new Promise((ok, fail) => (c.once('connect', () => ok(c)), c.once('error', fail)));
}

/** Keeps a publisher's socket full until `done()`. */
/**
 * Publishes `perSecond` messages a second until `done()`, in batches every 10 ms: a fixed load, at which
 * the broker's CPU per message compares like with like (a saturated broker batches more when it is
 * faster, so its CPU per message moves with its throughput).
 */
function offer(c: MqttClient, perSecond: number, done: () => boolean): void {
  const started = Date.now();
  let sent = 0;
  const timer = setInterval(() => {
    if (done()) return clearInterval(timer);
    const due = Math.floor(((Date.now() - started) * perSecond) / 1000);
    for (; sent < due; sent++) c.publish('bench/fanin', BODY, { qos: 0 });
  }, 10);
}

function saturate(c: MqttClient, done: () => boolean): void {
  const socket = (c as unknown as { stream: NodeJS.WritableStream & { writableNeedDrain: boolean } }).stream;
  const fill = (): void => {
    while (!done() && !socket.writableNeedDrain) c.publish('bench/fanin', BODY, { qos: 0 });
    if (!done()) socket.once('drain', fill);
  };
  fill();
}

async function listening(port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const up = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the broker did not start');
}

/** The CLI in its own process with an HTTP listener; `run` gets its ports and pid, the broker is stopped after. */
async function withBroker<T>(run: (b: { port: number; httpPort: number; pid: number }) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'mqprobe-bench-view-'));
  const [port, httpPort] = [await freePort(), await freePort()];
  const conf = join(dir, 'b.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\nhttp_listener ${httpPort} 127.0.0.1\nlog_type error\n`);
  const broker = spawn(process.execPath, [...BROKER_NODE_FLAGS, '--import', 'tsx', join(root, 'app', 'cli.ts'), '-c', conf], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    await listening(httpPort);
    return await run({ port, httpPort, pid: broker.pid! });
  } finally {
    broker.kill('SIGTERM');
    await new Promise((r) => broker.once('exit', r));
  }
}

const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));

/**
 * The fixed cost of open views, free of the load generator's noise: broker CPU per second while
 * idle, without and then with the views open (same process).
 */
function idleCost(): Promise<{ none: number; open: number }> {
  return withBroker(async ({ httpPort, pid }) => {
    const cpuMsPerS = async () => {
      const c0 = cpuTicks(pid) ?? NaN;
      await sleep(RUN_S);
      return (((cpuTicks(pid) ?? NaN) - c0) * 10) / RUN_S;
    };
    await sleep(WARMUP_S);
    const none = await cpuMsPerS();
    const close = await openViewers(httpPort, VIEWERS);
    await sleep(WARMUP_S);
    const open = await cpuMsPerS();
    close();
    return { none, open };
  });
}

interface Window {
  viewers: number;
  rate: number;
  cpuUsPerMsg: number;
  rssMb: number;
}

/**
 * One round: one broker process under a continuous fan-in, measured in windows without and with the
 * viewers (in `order`). Both variants share the process, so the comparison is free of what differs
 * from one broker process to the next (heap layout, JIT decisions), which moved single runs by ±10 %;
 * the order A B B A cancels a load on the machine that grows or shrinks during the round.
 */
function round(order: number[]): Promise<Window[]> {
  return withBroker(async ({ port, httpPort, pid }) => {
    const url = `mqtt://127.0.0.1:${port}`;
    const sub = await mqttClient(url, 'sub');
    let received = 0;
    sub.on('message', () => received++);
    await sub.subscribeAsync('bench/fanin', { qos: 0 });
    const pubs = await Promise.all([0, 1, 2, 3].map((i) => mqttClient(url, `pub-${i}`)));
    let over = false;
    for (const p of pubs) {
      if (RATE) offer(p, RATE / pubs.length, () => over);
      else saturate(p, () => over);
    }
    const windows: Window[] = [];
    for (const viewers of order) {
      const close = await openViewers(httpPort, viewers);
      await sleep(WARMUP_S);
      const [n0, t0, cpu0] = [received, Date.now(), cpuTicks(pid) ?? NaN];
      await sleep(RUN_S - WARMUP_S);
      const [n1, t1, cpu1] = [received, Date.now(), cpuTicks(pid) ?? NaN];
      const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      const rss = Number(/resident_memory_bytes (\d+)/.exec(metrics)?.[1] ?? NaN);
      close();
      windows.push({ viewers, rate: ((n1 - n0) * 1000) / (t1 - t0), cpuUsPerMsg: ((cpu1 - cpu0) * 1e4) / (n1 - n0), rssMb: rss / 1e6 });
    }
    over = true;
    for (const c of [...pubs, sub]) c.end(true);
    return windows;
  });
}

const runs: Window[] = [];
for (let r = 1; r <= ROUNDS; r++)
  for (const w of await round(r % 2 === 1 ? [0, VIEWERS, VIEWERS, 0] : [VIEWERS, 0, 0, VIEWERS])) {
    runs.push(w);
    console.log(
      `round ${r}, ${String(w.viewers).padStart(2)} viewers: ${Math.round(w.rate).toLocaleString('en-US')} msg/s delivered, ${w.cpuUsPerMsg.toFixed(2)} µs broker CPU per message, RSS ${w.rssMb.toFixed(0)} MB`,
    );
  }
const mean = (v: number, k: 'rate' | 'cpuUsPerMsg') => {
  const xs = runs.filter((r) => r.viewers === v).map((r) => r[k]);
  return xs.reduce((a, b) => a + b, 0) / xs.length;
};
/** Per round, the viewers' windows against the others of the same process (the load varies less within a round). */
const perRound = (k: 'rate' | 'cpuUsPerMsg') =>
  Array.from({ length: ROUNDS }, (_, i) => {
    const mine = runs.slice(i * 4, i * 4 + 4);
    const avg = (v: number) => mine.filter((w) => w.viewers === v).reduce((a, w) => a + w[k], 0) / 2;
    return ((avg(VIEWERS) - avg(0)) / avg(0)) * 100;
  }).sort((a, b) => a - b);
const median = (xs: number[]) => (xs.length % 2 ? xs[(xs.length - 1) / 2] : (xs[xs.length / 2 - 1] + xs[xs.length / 2]) / 2);
const [none, ten] = [mean(0, 'rate'), mean(VIEWERS, 'rate')];
console.log(
  `no viewer ${Math.round(none).toLocaleString('en-US')} msg/s, ${VIEWERS} viewers ${Math.round(ten).toLocaleString('en-US')} msg/s: ${(((ten - none) / none) * 100).toFixed(1)}%; CPU per message ${mean(0, 'cpuUsPerMsg').toFixed(2)} vs ${mean(VIEWERS, 'cpuUsPerMsg').toFixed(2)} µs`,
);
const idle = await idleCost();
console.log(
  `idle broker: ${idle.none.toFixed(1)} ms CPU per second without views, ${idle.open.toFixed(1)} ms with ${VIEWERS} open (${((idle.open - idle.none) / 10).toFixed(2)} % of one core for the views)`,
);
console.log(
  `per round (same process): throughput ${perRound('rate')
    .map((x) => `${x.toFixed(1)}%`)
    .join(', ')} (median ${median(perRound('rate')).toFixed(1)}%); CPU per message ${perRound('cpuUsPerMsg')
    .map((x) => `${x > 0 ? '+' : ''}${x.toFixed(1)}%`)
    .join(', ')} (median ${median(perRound('cpuUsPerMsg')).toFixed(1)}%)`,
);
