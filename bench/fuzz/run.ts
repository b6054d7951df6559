/**
 * The long protocol fuzz run (issue 18): the generator and driver of test/broker/fuzz.test.ts with
 * many more cases, against the real `mqprobe` command in its own process (TCP and WebSockets
 * listeners, capture to a file). A crash is the process exiting; a hang is a case or a health check
 * that gets no answer within 10 s. Afterwards SIGTERM, exit code 0 expected, and the capture file
 * (with its rotated predecessors) is checked line by line: JSON, `event.sequence` 1..N.
 *
 * With --mosquitto the same cases then run against Mosquitto (same two listeners), and a table
 * compares, per kind of case, how many connections each broker closed itself.
 *
 *   npx tsx bench/fuzz/run.ts [cases=66000] [seed=18] [--mosquitto]
 */
import { chmodSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';
import { findMosquitto, mosquittoVersion } from '../harness/brokers.js';
import { freePort, nodeCommand, start, stop, tail, waitListening, type Started } from '../harness/processes.js';
import { rssKb } from '../harness/proc.js';
import { checkCapture } from './capture-check.js';
import { runFuzz, type FuzzStats } from './drive.js';
import { KINDS } from './packets.js';

const args = process.argv.slice(2);
const positional = args.filter((a) => !a.startsWith('--'));
const CASES = Number(positional[0] ?? 66_000);
const SEED = Number(positional[1] ?? 18);
const WITH_MOSQUITTO = args.includes('--mosquitto');
if (!Number.isInteger(CASES) || CASES < 1 || !Number.isInteger(SEED) || args.some((a) => a.startsWith('--') && a !== '--mosquitto')) {
  console.error('usage: npx tsx bench/fuzz/run.ts [cases=66000] [seed=18] [--mosquitto]');
  process.exit(2);
}
const CHECK_EVERY = 1000;
const CONCURRENCY = 16;
const IDLE_MS = 150;

const mib = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`;
const n = (x: number) => x.toLocaleString('en');
const table = (m: Record<string, number>) =>
  Object.entries(m)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${n(v)}`)
    .join(', ');

interface Subject {
  name: string;
  proc: Started;
  tcpPort: number;
  wsPort: number;
  logFile: string;
}

interface Outcome {
  stats: FuzzStats;
  rss: { start: number; afterFirst: number; end: number; max: number };
  exit: number | null;
}

async function startSubject(name: 'mqprobe' | 'mosquitto', dir: string, capture: string): Promise<Subject> {
  const [tcpPort, wsPort] = [await freePort(), await freePort()];
  const conf = join(dir, `${name}.conf`);
  const listeners = `listener ${tcpPort} 127.0.0.1\nallow_anonymous true\nlistener ${wsPort} 127.0.0.1\nprotocol websockets\n`;
  writeFileSync(conf, name === 'mqprobe' ? `${listeners}capture_sink file ${capture}\n` : listeners);
  // Mosquitto started as root reads its config as user mosquitto
  chmodSync(conf, 0o644);
  const logFile = join(dir, `${name}.log`);
  const argv = name === 'mqprobe' ? nodeCommand('broker/cli', ['-c', conf], BROKER_NODE_FLAGS) : [findMosquitto()!, '-c', conf];
  const proc = start(argv, { logFile });
  await waitListening(tcpPort, proc);
  await waitListening(wsPort, proc);
  return { name, proc, tcpPort, wsPort, logFile };
}

/** Fuzzes one broker, then stops it with SIGTERM; null when it crashed or hung (already reported). */
async function fuzz(s: Subject): Promise<Outcome | null> {
  const pid = s.proc.child.pid!;
  let exitedEarly = false;
  void s.proc.exited.then(() => (exitedEarly = true));
  const rss = { start: rssKb(pid) ?? 0, afterFirst: 0, end: 0, max: 0 };
  const began = performance.now();
  const sampler = setInterval(() => (rss.max = Math.max(rss.max, rssKb(pid) ?? 0)), 200);
  console.log(`fuzzing ${s.name} (pid ${pid}, tcp ${s.tcpPort}, ws ${s.wsPort}): ${n(CASES)} cases, seed ${SEED}`);
  try {
    const stats = await runFuzz(s, {
      seed: SEED,
      count: CASES,
      concurrency: CONCURRENCY,
      idleMs: IDLE_MS,
      checkEvery: CHECK_EVERY,
      onBatch: (done, st) => {
        const now = rssKb(pid) ?? 0;
        if (done === CHECK_EVERY) rss.afterFirst = now;
        if (done % 5000 === 0 || done === CASES)
          console.log(
            `  ${n(done)} cases, ${((performance.now() - began) / 1000).toFixed(0)} s, RSS ${mib(now)}, closed by broker ${n(st.closedByBroker)} / fuzzer ${n(st.closedByFuzzer)}`,
          );
      },
    });
    rss.end = rssKb(pid) ?? 0;
    await stop(s.proc, 'SIGTERM');
    return { stats, rss, exit: s.proc.child.exitCode };
  } catch (err) {
    console.error(`FAILED on ${s.name}: ${(err as Error).message}`);
    console.error(
      exitedEarly
        ? `${s.name} exited (${s.proc.child.exitCode ?? s.proc.child.signalCode}); its log ends:\n${tail(s.logFile, 40)}`
        : `${s.name} is still running`,
    );
    await stop(s.proc);
    return null;
  } finally {
    clearInterval(sampler);
  }
}

function report(name: string, o: Outcome): void {
  const s = o.stats;
  console.log(`
${name}: ${n(s.cases)} cases (seed ${SEED}) in ${(s.durationMs / 1000).toFixed(1)} s, ${CONCURRENCY} connections at a time
by kind: ${table(s.byKind)}
by transport: ${table(s.byTransport)}; by MQTT version: ${table(s.byVersion)}; by delivery: ${table(s.byDelivery)}
connections closed by the broker: ${n(s.closedByBroker)}, by the fuzzer after ${IDLE_MS} ms of silence: ${n(s.closedByFuzzer)}, WebSocket handshakes refused: ${s.handshakesRefused}
health checks (QoS 1 round trip, TCP and WebSockets in turn): ${s.healthChecks} passed
exit code after SIGTERM: ${o.exit}
RSS: ${mib(o.rss.start)} at start, ${mib(o.rss.afterFirst)} after ${n(CHECK_EVERY)} cases, ${mib(o.rss.end)} at the end, max ${mib(o.rss.max)}`);
}

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'mqprobe-fuzz-'));
  chmodSync(dir, 0o755);
  const capture = join(dir, 'capture.ndjson');
  console.log(`files in ${dir}`);
  const probe = await fuzz(await startSubject('mqprobe', dir, capture));
  if (!probe) return 1;
  report('mqprobe', probe);
  const check = await checkCapture(capture);
  console.log(`capture: ${n(check.lines)} lines in ${check.files} file(s) (${(statSync(capture).size / 1048576).toFixed(1)} MiB in the last), ${check.problemCount} not JSON or out of sequence; protocol-error events ${n(check.byAction['protocol-error'] ?? 0)}
capture actions: ${table(check.byAction)}`);
  let ok = probe.exit === 0 && check.problemCount === 0;
  if (!ok) console.log(`FAIL${check.problems.length ? `\n${check.problems.join('\n')}` : ''}`);

  if (WITH_MOSQUITTO) {
    const bin = findMosquitto();
    if (!bin) throw new Error('--mosquitto: no mosquitto binary found (apt-get install mosquitto)');
    const name = `mosquitto ${mosquittoVersion(bin) ?? ''}`.trim();
    const mosq = await fuzz({ ...(await startSubject('mosquitto', dir, capture)), name });
    if (!mosq) return 1;
    report(name, mosq);
    ok &&= mosq.exit === 0;
    console.log(
      `\nclosed by the broker itself, per kind (the rest stayed open ${IDLE_MS} ms after their last byte):\n| kind | cases | mqprobe | ${name} |\n| --- | ---: | ---: | ---: |`,
    );
    for (const k of KINDS)
      console.log(
        `| ${k} | ${n(probe.stats.byKind[k] ?? 0)} | ${n(probe.stats.brokerClosedByKind[k] ?? 0)} | ${n(mosq.stats.brokerClosedByKind[k] ?? 0)} |`,
      );
  }
  console.log(ok ? 'PASS' : 'FAIL');
  return ok ? 0 : 1;
}

process.exitCode = await main();
