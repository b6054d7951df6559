/**
 * Zeek beat throughput: replays a conn.log of N lines (the fixture's records repeated with fresh uids)
 * into a broker started from the CLI in its own process, with one MQTT subscriber (QoS 0) and K SSE
 * clients on beats/zeek/#, and reports lines/s from the move of the log into the tailed directory to
 * the last record at the subscriber, the broker's CPU seconds (lines per broker CPU-second), SSE
 * events per client, and the broker's peak RSS.
 *
 *   npx tsx bench/zeek/replay.ts [lines=100000] [sseClients=0]
 *
 * BENCH_DEBUG=1 shows the broker's log and progress; BENCH_PROFILE=<dir> writes a CPU profile of
 * the broker there (it is stopped with SIGTERM, so the profile is written).
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';
import { freePort, nodeCommand, repoRoot, start, stop, waitListening } from '../harness/processes.js';
import { cpuTicks, rssKb } from '../harness/proc.js';

const lines = Number(process.argv[2] ?? 100_000);
const sseClients = Number(process.argv[3] ?? 0);
const CLOCK_TICKS = 100;

const dir = mkdtempSync(join(tmpdir(), 'mqprobe-zeek-bench-'));
const logs = join(dir, 'logs');
const fixtureLines = readFileSync(join(repoRoot, 'test', 'fixtures', 'zeek', 'conn.log'), 'utf8')
  .split('\n')
  .filter((l) => l !== '');
const header = fixtureLines.filter((l) => l.startsWith('#') && !l.startsWith('#close'));
const records = fixtureLines.filter((l) => !l.startsWith('#'));
const body: string[] = [...header];
for (let i = 0; i < lines; i++) {
  const f = records[i % records.length].split('\t');
  f[1] = `C${i.toString(36).padStart(17, '0')}`;
  body.push(f.join('\t'));
}
mkdirSync(logs);
writeFileSync(join(logs, 'conn.log'), `${body.join('\n')}\n`);
const bytes = Buffer.byteLength(body.join('\n'));

const [port, httpPort] = [await freePort(), await freePort()];
const conf = join(dir, 'mqprobe.conf');
// capture at its defaults (to stdout, discarded here), as a broker out of the box runs
writeFileSync(
  conf,
  [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    `http_listener ${httpPort} 127.0.0.1`,
    `persistence_location ${dir}`,
    'beat zeek',
    `zeek_log_dir ${join(dir, 'pending')}`,
    'zeek_start beginning',
    '',
  ].join('\n'),
);
// the beat starts on an empty directory; the log is moved in once every reader is attached
const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
const logFile = process.env.BENCH_DEBUG ? '/dev/stderr' : '/dev/null';
const broker = start(nodeCommand('app/cli', ['-c', conf], [...BROKER_NODE_FLAGS, ...profile]), { logFile });
const pid = broker.child.pid!;
try {
  await waitListening(port, broker, 30_000);
  await waitListening(httpPort, broker, 30_000);
  const sub = mqtt.connect(`mqtt://127.0.0.1:${port}`);
  await new Promise((r) => sub.once('connect', r));
  let got = 0;
  let first = 0;
  let last = 0;
  sub.on('message', () => {
    if (got++ === 0) first = performance.now();
    last = performance.now();
  });
  sub.on('error', (e) => console.error('subscriber error', e.message));
  await sub.subscribeAsync('beats/zeek/#', { qos: 0 });
  const sse = Array.from({ length: sseClients }, () => ({ events: 0, last: 0, dropped: false }));
  await Promise.all(
    sse.map(
      (s) =>
        new Promise<void>((resolve) => {
          http.get(`http://127.0.0.1:${httpPort}/sse?topic=beats/zeek/%23`, { agent: false }, (res) => {
            res.setEncoding('utf8');
            res.on('close', () => (s.dropped = true));
            resolve();
            // an event is a line starting with "event: "; complete lines are counted, a cut one waits for its rest
            let carry = '';
            res.on('data', (chunk: string) => {
              const text = carry + chunk;
              const end = text.lastIndexOf('\n') + 1;
              if (text.startsWith('event: ') && end > 0) s.events++;
              for (let i = text.indexOf('\nevent: '); i >= 0 && i < end - 1; i = text.indexOf('\nevent: ', i + 1)) s.events++;
              carry = text.slice(end);
              s.last = performance.now();
            });
          });
        }),
    ),
  );
  const idleRss = (rssKb(pid) ?? 0) / 1024;
  const cpu0 = cpuTicks(pid) ?? 0;
  const t0 = performance.now();
  renameSync(logs, join(dir, 'pending'));
  const deadline = Date.now() + 600_000;
  while ((got < lines || sse.some((s) => s.events < lines && !s.dropped)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    if (process.env.BENCH_DEBUG)
      console.error(
        'progress',
        got,
        sse.map((s) => s.events),
      );
  }
  const cpu = ((cpuTicks(pid) ?? 0) - cpu0) / CLOCK_TICKS;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  const secs = (last - t0) / 1000;
  console.log(
    `zeek conn.log: ${lines} lines (${(bytes / 1e6).toFixed(1)} MB) -> ${got} MQTT messages in ${secs.toFixed(2)} s = ${Math.round(got / secs)} lines/s (first record after ${((first - t0) / 1000).toFixed(2)} s)`,
  );
  console.log(`  broker CPU ${cpu.toFixed(2)} s = ${Math.round(got / cpu)} lines per broker CPU-second`);
  for (const [i, s] of sse.entries())
    console.log(
      `  SSE client ${i + 1}: ${s.events} events, ${Math.round(s.events / ((s.last - t0) / 1000))} events/s${s.dropped ? ' (dropped by the broker: too far behind)' : ''}`,
    );
  console.log(`  broker RSS ${idleRss.toFixed(0)} MB before the replay, peak ${hwm.toFixed(0)} MB (${sseClients} SSE clients)`);
  sub.end(true);
} finally {
  await stop(broker, 'SIGTERM', 10_000);
  rmSync(dir, { recursive: true, force: true });
}
