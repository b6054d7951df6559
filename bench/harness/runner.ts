/** One run: a fresh broker (and receiver), one generator process, one job, then everything stopped. */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrokerVariant } from './brokers.js';
import type { GeneratorMessage, JobResult } from './load/jobs.js';
import { freePort, nodeCommand, pinned, repoRoot, start, stop, tail, waitListening, type Pinning, type Started } from './processes.js';
import type { ScenarioCase } from './scenarios.js';
import type { ReceiverMessage, ReceiverStats } from './servers/receiver.js';

export interface RunSetup {
  dir: string;
  pinning: Pinning;
  clockTicks: number;
  credentials: { username: string; password: string };
  passwordFile: string;
  /** Where Node brokers write a CPU profile per run (--cpu-prof), if asked. */
  cpuProf?: string;
}

/**
 * A temporary folder (0755: Mosquitto started as root reads its files as user mosquitto) holding a
 * password file for the bench user, written by `mqprobe passwd` in mosquitto_passwd's default format.
 */
export function createSetup(pinning: Pinning, clockTicks: number, cpuProf?: string): RunSetup {
  const dir = mkdtempSync(join(tmpdir(), 'mqprobe-bench-'));
  chmodSync(dir, 0o755);
  const credentials = { username: 'bench', password: 'bench-password' };
  const passwordFile = join(dir, 'passwd');
  const [node, ...args] = nodeCommand('app/cli', ['passwd', '-c', '-b', passwordFile, credentials.username, credentials.password]);
  const pw = spawnSync(node, args, { cwd: repoRoot, encoding: 'utf8' });
  if (pw.status !== 0) throw new Error(`mqprobe passwd failed: ${pw.stderr}`);
  chmodSync(passwordFile, 0o644);
  return { dir, pinning, clockTicks, credentials, passwordFile, cpuProf };
}

/**
 * The broker's command line, with V8's CPU profiler on when asked and the broker runs on Node (the
 * profile is written at exit, so such a broker is stopped with SIGTERM, not SIGKILL).
 */
function profiled(setup: RunSetup, name: string, argv: string[]): { argv: string[]; profileDir?: string } {
  if (!setup.cpuProf || argv[0] !== process.execPath) return { argv };
  const dir = join(setup.cpuProf, name);
  mkdirSync(dir, { recursive: true });
  // mqprobe started as root writes it as user mosquitto: the folder above must let it through
  chmodSync(setup.cpuProf, statSync(setup.cpuProf).mode | 0o711);
  chmodSync(dir, 0o777);
  return { argv: [argv[0], '--cpu-prof', `--cpu-prof-dir=${dir}`, ...argv.slice(1)], profileDir: dir };
}

/** What capture delivered to the receiver (capture variant only), after the broker stopped. */
export interface CaptureCheck extends ReceiverStats {
  /** Sequences neither received nor reported dropped. */
  unaccounted: number;
}

export interface RunRecord {
  time: string;
  case: string;
  scenario: string;
  variant: string;
  round: number;
  ok: boolean;
  /** Delivery problems or the error that ended the run. */
  problems: string[];
  metrics: Record<string, number | undefined>;
  result?: JobResult;
  capture?: CaptureCheck;
  loadavg: number[];
}

export type ProgressFn = (phase: string, done?: number, total?: number) => void;

function once<T>(child: Started, pick: (m: unknown) => T | undefined, what: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`${what}: no answer within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
    const onMessage = (m: unknown) => {
      const v = pick(m);
      if (v !== undefined) finish(undefined, v);
    };
    const onExit = () => finish(new Error(`${what}: process exited (${child.child.exitCode ?? child.child.signalCode})`));
    const finish = (err?: Error, v?: T) => {
      clearTimeout(timer);
      child.child.off('message', onMessage);
      child.child.off('exit', onExit);
      if (err) reject(err);
      else resolve(v as T);
    };
    child.child.on('message', onMessage);
    child.child.once('exit', onExit);
  });
}

async function receiverStats(receiver: Started): Promise<ReceiverStats> {
  const answer = once(
    receiver,
    (m) => ((m as ReceiverMessage).type === 'stats' ? (m as { stats: ReceiverStats }).stats : undefined),
    'json_lines receiver',
    5000,
  );
  receiver.child.send({ cmd: 'stats' });
  return answer;
}

export async function runOne(
  setup: RunSetup,
  sc: ScenarioCase,
  variant: BrokerVariant,
  round: number,
  progress: ProgressFn,
): Promise<RunRecord> {
  const name = `${sc.id}-${variant.id}-r${round}`;
  const logFile = join(setup.dir, `${name}.log`);
  const record: RunRecord = {
    time: new Date().toISOString(),
    case: sc.id,
    scenario: sc.scenario,
    variant: variant.id,
    round,
    ok: false,
    problems: [],
    metrics: {},
    loadavg: [],
  };
  const started: Started[] = [];
  let broker: Started | undefined;
  let receiver: Started | undefined;
  let profileDir: string | undefined;
  try {
    const port = await freePort();
    let receiverPort: number | undefined;
    if (variant.receiver) {
      receiver = start(pinned(setup.pinning.load, nodeCommand('bench/harness/servers/receiver')), { logFile, ipc: true });
      started.push(receiver);
      receiverPort = await once(
        receiver,
        (m) => ((m as ReceiverMessage).type === 'listening' ? (m as { port: number }).port : undefined),
        'json_lines receiver',
        20_000,
      );
    }
    progress('starting broker');
    const command = profiled(
      setup,
      name,
      variant.command({ dir: setup.dir, name, port, passwordFile: sc.auth ? setup.passwordFile : undefined, receiverPort }),
    );
    profileDir = command.profileDir;
    broker = start(pinned(setup.pinning.broker, command.argv), { logFile });
    started.push(broker);
    await waitListening(port, broker).catch((err: Error) => {
      throw new Error(`${variant.label} did not start: ${err.message}\n${tail(logFile)}`);
    });

    const generator = start(pinned(setup.pinning.load, nodeCommand('bench/harness/generator')), { logFile, ipc: true });
    started.push(generator);
    const watch = { broker: broker.child.pid!, receiver: receiver?.child.pid, clockTicks: setup.clockTicks };
    const job = sc.job({ port, watch, clientPrefix: `bench-${round}-`, credentials: setup.credentials });
    generator.child.on('message', (m: GeneratorMessage) => {
      if (m.type === 'progress') progress(m.phase, m.done, m.total);
    });
    const budget = 'durationMs' in job ? job.warmupMs + job.durationMs + job.drainMs + 60_000 : 180_000;
    const answer = once(
      generator,
      (m) => {
        const g = m as GeneratorMessage;
        return g.type === 'result' ? g.result : g.type === 'error' ? new Error(g.message) : undefined;
      },
      'load generator',
      budget,
    );
    generator.child.send(job);
    const result = await answer;
    if (result instanceof Error) throw result;
    record.result = result;
    record.loadavg = loadavg().map((l) => Math.round(l * 100) / 100);
    for (const m of sc.metrics) record.metrics[m.key] = m.pick(result);
    record.problems.push(...sc.check(result));

    progress('stopping');
    // the broker goes first: its side of every connection closes first (no TIME_WAIT pile-up on the generator's ports)
    await stop(broker, variant.graceful || profileDir ? 'SIGTERM' : 'SIGKILL');
    if (profileDir && !readdirSync(profileDir).some((f) => f.endsWith('.cpuprofile')))
      record.problems.push(`--cpu-prof: the broker wrote no CPU profile to ${profileDir}`);
    if (receiver) {
      const s = await receiverStats(receiver);
      record.capture = { ...s, unaccounted: Math.max(0, s.maxSequence - s.lines - s.dropped) };
      if (!s.lines) record.problems.push('capture delivered no events to the json_lines receiver');
    }
    record.ok = record.problems.length === 0;
  } catch (err) {
    record.problems.push((err as Error).message);
  } finally {
    await Promise.all(started.map((p) => stop(p)));
  }
  return record;
}
