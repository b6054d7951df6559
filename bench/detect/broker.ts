/**
 * Broker cost with capture alone and with capture + detection: the real CLI in its own process
 * capturing every publish to a file, QoS 0 fan-in (4 publishers → 1 subscriber, 64-byte
 * payloads), rounds alternating detect off / on. The figures are the broker process's CPU time
 * per delivered message (robust when other processes share the cores) and the messages per
 * second the subscriber receives after a warm-up.
 *
 *   npx tsx bench/detect/broker.ts [seconds per run=8] [rounds=3]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SECONDS = Number(process.argv[2] ?? 8);
const ROUNDS = Number(process.argv[3] ?? 3);
const PAYLOAD = Buffer.alloc(64, 'p');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** User + system CPU seconds of a process so far (Linux /proc; clock ticks of 1/100 s). */
function cpuOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Result {
  rate: number;
  /** Broker CPU microseconds per delivered message. */
  cpuUs: number;
}

async function connect(url: string, clientId: string): Promise<MqttClient> {
  for (let i = 0; ; i++) {
    try {
      return await mqtt.connectAsync(url, { clientId, reconnectPeriod: 0 });
    } catch (err) {
      if (i > 100) throw err;
      await sleep(100);
    }
  }
}

/** Publishes as fast as the socket takes it until stopped. */
function pump(c: MqttClient, topic: string, running: () => boolean): void {
  const next = () => {
    for (let i = 0; i < 200 && running(); i++) c.publish(topic, PAYLOAD, { qos: 0 });
    if (running()) setImmediate(next);
  };
  next();
}

async function run(detect: boolean, port: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'mqprobe-detect-bench-'));
  const conf = join(dir, 'b.conf');
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\nlog_type error\ndetect ${detect ? 'on' : 'off'}\ncapture_sink file ${join(dir, 'capture.ndjson')}\n`,
  );
  const broker = spawn(process.execPath, ['--import', 'tsx', join(root, 'app', 'cli.ts'), '-c', conf], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    const url = `mqtt://127.0.0.1:${port}`;
    const sub = await connect(url, 'sink');
    await sub.subscribeAsync('fanin/#', { qos: 0 });
    let received = 0;
    sub.on('message', () => received++);
    const pubs = await Promise.all([0, 1, 2, 3].map((i) => connect(url, `pub-${i}`)));
    let running = true;
    pubs.forEach((p, i) => pump(p, `fanin/${i}`, () => running));
    await sleep(2000);
    const from = received;
    const cpu0 = cpuOf(broker.pid!);
    await sleep(SECONDS * 1000);
    const cpu = cpuOf(broker.pid!) - cpu0;
    const got = received - from;
    running = false;
    await Promise.all([...pubs, sub].map((c) => c.endAsync(true)));
    return { rate: got / SECONDS, cpuUs: (cpu * 1e6) / got };
  } finally {
    broker.kill('SIGTERM');
    await new Promise((r) => broker.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

const port = 18_000 + Math.floor(Math.random() * 2000);
const off: Result[] = [];
const on: Result[] = [];
const show = (r: Result) => `${Math.round(r.rate)} msg/s, ${r.cpuUs.toFixed(1)} µs broker CPU per message`;
for (let r = 0; r < ROUNDS; r++) {
  off.push(await run(false, port));
  on.push(await run(true, port));
  console.log(`round ${r + 1}: capture alone ${show(off[r])}; capture + detection ${show(on[r])}`);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const a = { rate: median(off.map((x) => x.rate)), cpuUs: median(off.map((x) => x.cpuUs)) };
const b = { rate: median(on.map((x) => x.rate)), cpuUs: median(on.map((x) => x.cpuUs)) };
console.log(
  `median: capture alone ${show(a)}; capture + detection ${show(b)}: detection adds ${(((b.cpuUs - a.cpuUs) / a.cpuUs) * 100).toFixed(1)}% CPU per message`,
);
process.exit(0);
