/**
 * The long protocol fuzz run (issue 18): the generator and driver of test/broker/fuzz.test.ts with
 * many more cases, against the real `mqprobe` command in its own process (TCP and WebSockets
 * listeners, capture to a file). A crash is the process exiting; a hang is a case or a health check
 * that gets no answer within 10 s. Afterwards SIGTERM, exit code 0 expected, and the capture file is
 * checked line by line (JSON, `event.sequence` 1..N). Prints the counts for bench/RESULTS.md.
 *
 *   npx tsx bench/fuzz/run.ts [cases=66000] [seed=18]
 */
import { chmodSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';
import { freePort, nodeCommand, start, stop, tail, waitListening } from '../harness/processes.js';
import { rssKb } from '../harness/proc.js';
import { checkCapture } from './capture-check.js';
import { runFuzz, type FuzzStats } from './drive.js';

const CASES = Number(process.argv[2] ?? 66_000);
const SEED = Number(process.argv[3] ?? 18);
if (!Number.isInteger(CASES) || CASES < 1 || !Number.isInteger(SEED)) {
  console.error('usage: npx tsx bench/fuzz/run.ts [cases=66000] [seed=18]');
  process.exit(2);
}
const CHECK_EVERY = 1000;

const table = (m: Record<string, number>) =>
  Object.entries(m)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v.toLocaleString('en')}`)
    .join(', ');

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'mqprobe-fuzz-'));
  chmodSync(dir, 0o755);
  const [tcpPort, wsPort] = [await freePort(), await freePort()];
  const capture = join(dir, 'capture.ndjson');
  const conf = join(dir, 'mqprobe.conf');
  writeFileSync(conf, `listener ${tcpPort} 127.0.0.1\nallow_anonymous true\nlistener ${wsPort} 127.0.0.1\nprotocol websockets\ncapture_sink file ${capture}\n`);
  const logFile = join(dir, 'broker.log');
  const broker = start(nodeCommand('broker/cli', ['-c', conf], BROKER_NODE_FLAGS), { logFile });
  let exitedEarly = false;
  void broker.exited.then(() => (exitedEarly = true));
  await waitListening(tcpPort, broker);
  await waitListening(wsPort, broker);
  const pid = broker.child.pid!;
  const rssAtStart = rssKb(pid) ?? 0;
  let maxRss = rssAtStart;
  let rssAfterFirst = 0;
  const sampler = setInterval(() => (maxRss = Math.max(maxRss, rssKb(pid) ?? 0)), 200);
  console.log(`fuzzing mqprobe (pid ${pid}, tcp ${tcpPort}, ws ${wsPort}): ${CASES.toLocaleString('en')} cases, seed ${SEED}; files in ${dir}`);

  let stats: FuzzStats;
  try {
    stats = await runFuzz(
      { tcpPort, wsPort },
      {
        seed: SEED,
        count: CASES,
        concurrency: 16,
        idleMs: 150,
        checkEvery: CHECK_EVERY,
        onBatch: (done, s) => {
          const rss = rssKb(pid) ?? 0;
          if (done === CHECK_EVERY) rssAfterFirst = rss;
          if (done % 5000 === 0 || done === CASES) console.log(`  ${done} cases, ${(performance.now() / 1000).toFixed(0)} s, broker RSS ${(rss / 1024).toFixed(1)} MiB, closed by broker ${s.closedByBroker} / fuzzer ${s.closedByFuzzer}`);
        },
      },
    );
  } catch (err) {
    clearInterval(sampler);
    console.error(`FAILED: ${(err as Error).message}`);
    console.error(exitedEarly ? `the broker exited (${broker.child.exitCode ?? broker.child.signalCode}); its log ends:\n${tail(logFile, 40)}` : 'the broker is still running');
    await stop(broker);
    return 1;
  }
  clearInterval(sampler);
  const rssAtEnd = rssKb(pid) ?? 0;
  await stop(broker, 'SIGTERM');
  const exit = broker.child.exitCode;
  const check = await checkCapture(capture);
  const ok = exit === 0 && check.problemCount === 0;

  console.log(`
cases: ${stats.cases.toLocaleString('en')} (seed ${SEED}) in ${(stats.durationMs / 1000).toFixed(1)} s, 16 connections at a time
by kind: ${table(stats.byKind)}
by transport: ${table(stats.byTransport)}; by MQTT version: ${table(stats.byVersion)}; by delivery: ${table(stats.byDelivery)}
connections closed by the broker: ${stats.closedByBroker.toLocaleString('en')}, by the fuzzer after 150 ms of silence: ${stats.closedByFuzzer.toLocaleString('en')}, WebSocket handshakes refused: ${stats.handshakesRefused}
health checks (QoS 1 round trip, TCP and WebSockets in turn): ${stats.healthChecks} passed
broker exit code after SIGTERM: ${exit}
capture: ${check.lines.toLocaleString('en')} lines (${(statSync(capture).size / 1048576).toFixed(1)} MiB), ${check.problemCount} not JSON or out of sequence; protocol-error events ${(check.byAction['protocol-error'] ?? 0).toLocaleString('en')}
capture actions: ${table(check.byAction)}
broker RSS: ${(rssAtStart / 1024).toFixed(1)} MiB at start, ${(rssAfterFirst / 1024).toFixed(1)} MiB after ${CHECK_EVERY} cases, ${(rssAtEnd / 1024).toFixed(1)} MiB at the end, max ${(maxRss / 1024).toFixed(1)} MiB
${ok ? 'PASS' : `FAIL${check.problems.length ? `\n${check.problems.join('\n')}` : ''}`}`);
  return ok ? 0 : 1;
}

process.exitCode = await main();
