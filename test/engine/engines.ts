/**
 * Engines for the MQTT 5 probes (probes.ts, clients.ts): a bare Aedes as a child process of the
 * test (bench/harness/servers/aedes.ts) or mqprobe itself, restarted when a probe killed it, and probeAll, which
 * compares every answer with expected.ts (ENGINE_PROBE_OBSERVE=1 prints them instead).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Test } from 'tap';
import { freePort, spawnCli, tempDir, waitForPort, type BrokerProcess } from '../helpers/broker.js';
import { killAndWait } from '../helpers/mosquitto.js';
import { repoRoot } from '../helpers/paths.js';
import { EXPECTED } from './expected.js';
import { viaMosquittoTools, viaMqttJs } from './clients.js';
import { PROBES, runProbe } from './probes.js';

/** The limits the probes need, set alike on the beta and on Mosquitto (Mosquitto's defaults where it has them). */
export const BETA_OPTIONS = { topicAliasMaximum: 10, receiveMaximum: 20, maximumPacketSize: 10_000 };
export const MOSQUITTO_CONF = 'allow_anonymous true\nmax_packet_size 10000\n';

export interface Engine {
  port: number;
  log(): string;
  /** Starts it again when a probe killed it (the next probes still get an answer). */
  ensureRunning(): Promise<void>;
}

export async function startAedes(tt: Test, folder: string, options: object): Promise<Engine> {
  const port = await freePort();
  const script = join(repoRoot, 'bench/harness/servers/aedes.ts');
  let log = '';
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(process.execPath, ['--import', 'tsx', script, String(port), folder, JSON.stringify(options)], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => (log += d));
    child.stderr!.on('data', (d) => (log += d));
    await waitForPort(port);
  };
  tt.teardown(() => killAndWait(child));
  await start();
  return {
    port,
    log: () => log,
    ensureRunning: async () => {
      if (child?.exitCode === null && child.signalCode === null) return;
      log += '(engine process exited; restarted for the next probe)\n';
      await start();
    },
  };
}

const observe = process.env.ENGINE_PROBE_OBSERVE === '1';

export async function probeAll(tt: Test, engine: keyof typeof EXPECTED, e: Engine): Promise<void> {
  // the client round trips first: some probes below kill the Aedes 2 beta (it is restarted for the next one)
  for (const [name, client] of [
    ['mqttjs', viaMqttJs],
    ['mosquittoTools', viaMosquittoTools],
  ] as const) {
    await e.ensureRunning();
    const answer = await client(e.port);
    if (observe) tt.comment(`${engine} ${name}: ${answer}`);
    else tt.equal(answer, EXPECTED[engine][name], `${engine}: MQTT 5 round trip through ${name}`);
  }
  for (const name of Object.keys(PROBES)) {
    await e.ensureRunning();
    const answer = await runProbe(name, e.port);
    if (observe) tt.comment(`${engine} ${name}: ${answer}`);
    else tt.equal(answer, EXPECTED[engine][name], `${engine}: ${PROBES[name].feature}`);
  }
  if (observe) tt.comment(`${engine} log (distinct lines):\n${[...new Set(e.log().split('\n'))].join('\n')}`);
}

/** mqprobe itself (the CLI from source, a child process) on a free port with `conf` after its listener line. */
export async function startMqprobe(tt: Test, conf: string): Promise<Engine> {
  const port = await freePort();
  const dir = tempDir('mqprobe-probes-');
  const file = join(dir, 'mqprobe.conf');
  writeFileSync(file, `listener ${port} 127.0.0.1\n${conf}`);
  let broker: BrokerProcess | undefined;
  let log = '';
  const start = async () => {
    broker = spawnCli(tt, ['-c', file]);
    await waitForPort(port);
  };
  await start();
  return {
    port,
    log: () => log + (broker?.output() ?? ''),
    ensureRunning: async () => {
      if (broker?.child.exitCode === null && broker.child.signalCode === null) return;
      log += `${broker?.output() ?? ''}(mqprobe exited; restarted for the next probe)\n`;
      await start();
    },
  };
}
