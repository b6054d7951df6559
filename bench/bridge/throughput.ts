/**
 * Messages per second through an `out` bridge, mqprobe's beside Mosquitto's own, in one run: a local broker
 * (mqprobe, or Mosquitto) bridges `bench/#` to a remote Mosquitto; an mqtt.js client publishes N messages
 * (QoS 0, then QoS 1) to the local broker and another, subscribed on the remote, counts them. At most WINDOW
 * messages are on their way end to end (sent and not yet counted at the remote), so no queue on the way
 * overflows and every message is counted: a run that loses one says so. CPU per bridged message is the local
 * broker process's utime+stime (/proc/<pid>/stat) over the run divided by N: it holds both the local broker's
 * work and its bridge's, for Mosquitto as for mqprobe. Runs alternate (Mosquitto, mqprobe) per QoS and round.
 *
 *   npx tsx bench/bridge/throughput.ts [messages=20000] [rounds=1]
 *
 * Prints one line per run, then the medians, the ratios mqprobe / Mosquitto and the load average.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';
import { mosquittoOnFreePort, MOSQUITTO_MISSING } from '../harness/brokers.js';
import { cpuTicks } from '../harness/proc.js';
import { freePort, nodeCommand, start, stop, tail, waitListening, type Started } from '../harness/processes.js';

const MESSAGES = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 1);
const WINDOW = 500;
const PAYLOAD = Buffer.alloc(64, 'x');
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;
const TIMEOUT_MS = 120_000;
const BRIDGE = (remotePort: number, qos: number) =>
  `connection bench\naddress 127.0.0.1:${remotePort}\nremote_clientid bench\ntopic bench/# out ${qos}\n`;

type Qos = 0 | 1;
interface Run {
  broker: 'mosquitto' | 'mqprobe';
  qos: Qos;
  counted: number;
  seconds: number;
  cpuUsPerMessage: number;
}

const freshDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'mqprobe-bench-bridge-'));
  chmodSync(dir, 0o755);
  return dir;
};

async function connect(port: number, clientId: string): Promise<MqttClient> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => (c.once('connect', () => resolve()), c.once('error', reject)));
  return c;
}

/** The local broker with its bridge to `remotePort`: Mosquitto's own, or mqprobe (capture and detection off). */
async function startLocal(
  broker: Run['broker'],
  remotePort: number,
  qos: Qos,
  dir: string,
): Promise<{ p: Started; port: number; log: string }> {
  const log = join(dir, `${broker}.log`);
  let argv: string[];
  let port: number;
  if (broker === 'mosquitto') {
    const m = (await mosquittoOnFreePort(dir, BRIDGE(remotePort, qos)))!;
    [argv, port] = [m.argv, m.port];
  } else {
    port = await freePort();
    const conf = join(dir, 'mqprobe.conf');
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\ndetect off\n${BRIDGE(remotePort, qos)}`);
    argv = nodeCommand('app/cli', ['-c', conf], BROKER_NODE_FLAGS);
  }
  const p = start(argv, { logFile: log });
  await waitListening(port, p);
  return { p, port, log };
}

async function measure(broker: Run['broker'], qos: Qos): Promise<Run> {
  const remoteDir = freshDir();
  const remoteConf = (await mosquittoOnFreePort(remoteDir))!;
  const remote = start(remoteConf.argv, { logFile: join(remoteDir, 'remote.log') });
  const local = await waitListening(remoteConf.port, remote).then(() => startLocal(broker, remoteConf.port, qos, freshDir()));
  try {
    const sink = await connect(remoteConf.port, 'sink');
    let counted = 0;
    let onCount: (() => void) | undefined;
    sink.on('message', (topic) => {
      if (!topic.startsWith('bench/')) return;
      counted++;
      onCount?.();
    });
    await sink.subscribeAsync('bench/#', { qos });
    const pub = await connect(local.port, 'pub');
    // the bridge is up once a first message crosses (its subscriptions on both sides are in place)
    for (let tries = 0; counted === 0; tries++) {
      if (tries > 200) throw new Error(`${broker}: the bridge never forwarded a message:\n${tail(local.log)}`);
      pub.publish('bench/warmup', 'w', { qos: 1 });
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 300));
    counted = 0;
    const pid = local.p.child.pid!;
    const cpu0 = cpuTicks(pid) ?? NaN;
    const t0 = performance.now();
    const deadline = Date.now() + TIMEOUT_MS;
    const waitCount = (n: number) =>
      new Promise<void>((resolve) => {
        if (counted >= n || Date.now() > deadline) return resolve();
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        onCount = () => {
          if (counted < n) return;
          clearTimeout(timer);
          onCount = undefined;
          resolve();
        };
      });
    for (let sent = 0; sent < MESSAGES; sent++) {
      if (sent - counted >= WINDOW) await waitCount(sent - WINDOW + 1);
      if (Date.now() > deadline) break;
      pub.publish(`bench/${sent % 10}`, PAYLOAD, { qos });
    }
    await waitCount(MESSAGES);
    const seconds = (performance.now() - t0) / 1000;
    const cpuSeconds = ((cpuTicks(pid) ?? NaN) - cpu0) / CLOCK_TICKS;
    pub.end(true);
    sink.end(true);
    return { broker, qos, counted, seconds, cpuUsPerMessage: (cpuSeconds / MESSAGES) * 1e6 };
  } finally {
    await stop(local.p);
    await stop(remote);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

if (!(await mosquittoOnFreePort(freshDir()))) {
  console.error(MOSQUITTO_MISSING);
  process.exit(2);
}
const loadBefore = loadavg();
const runs: Run[] = [];
let lost = false;
for (let round = 0; round < ROUNDS; round++)
  for (const qos of [0, 1] as const)
    for (const broker of ['mosquitto', 'mqprobe'] as const) {
      const r = await measure(broker, qos);
      runs.push(r);
      if (r.counted !== MESSAGES) lost = true;
      console.log(
        `${broker.padEnd(9)} QoS ${qos}  ${String(r.counted).padStart(6)}/${MESSAGES} counted  ${(r.counted / r.seconds).toFixed(0).padStart(6)} msg/s  ` +
          `${r.cpuUsPerMessage.toFixed(1).padStart(6)} µs CPU/message`,
      );
    }
console.log(`\nmedians over ${ROUNDS} round(s), ${MESSAGES} messages of ${PAYLOAD.length} bytes, ${WINDOW} end to end at most:`);
for (const qos of [0, 1] as const) {
  const pick = (b: Run['broker'], f: (r: Run) => number) => median(runs.filter((r) => r.broker === b && r.qos === qos).map(f));
  const rate = (b: Run['broker']) => pick(b, (r) => r.counted / r.seconds);
  const cpu = (b: Run['broker']) => pick(b, (r) => r.cpuUsPerMessage);
  console.log(
    `QoS ${qos}: Mosquitto ${rate('mosquitto').toFixed(0)} msg/s, ${cpu('mosquitto').toFixed(1)} µs CPU/message; ` +
      `mqprobe ${rate('mqprobe').toFixed(0)} msg/s, ${cpu('mqprobe').toFixed(1)} µs CPU/message; ` +
      `mqprobe/Mosquitto: ${(rate('mqprobe') / rate('mosquitto')).toFixed(2)}× the rate, ${(cpu('mqprobe') / cpu('mosquitto')).toFixed(1)}× the CPU`,
  );
}
console.log(`load average (1, 5, 15 min): before ${loadBefore}, after ${loadavg()}`);
if (lost) {
  console.log('messages were lost (counted < sent): see the lines above');
  process.exitCode = 1;
}
