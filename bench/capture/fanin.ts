/**
 * Publish throughput with capture off and on: QoS 0 fan-in, 4 publishers → 1 subscriber, 64-byte
 * payloads, against the real CLI in its own process; with capture on, every event goes to a
 * json_lines TCP receiver in a third process (bench/capture/receiver.ts). Rounds alternate off/on.
 *
 * Detection is switched off in both (`detect off`): it observes events through capture too, and
 * its cost is measured in bench/detect/.
 *
 *   npx tsx bench/capture/fanin.ts [seconds per run=8] [rounds=2]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';
import { measureFanIn } from '../harness/fanin.js';
import { freePort } from '../harness/processes.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SECONDS = Number(process.argv[2] ?? 8);
const ROUNDS = Number(process.argv[3] ?? 2);
const WARMUP_S = 2;

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((res) => {
    let buf = '';
    const on = (d: Buffer) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) {
        child.stdout!.off('data', on);
        res(buf.slice(0, i));
      }
    };
    child.stdout!.on('data', on);
  });
}

async function waitPort(port: number): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function run(
  capture: boolean,
  receiverPort: number,
  receiverPid: number,
): Promise<{ rate: number; metrics?: string; spooled: number; brokerCpu: number; receiverCpu: number; usPerMessage: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'mqprobe-bench-'));
  const port = await freePort();
  const httpPort = await freePort();
  const conf = join(dir, 'b.conf');
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\nhttp_listener ${httpPort} 127.0.0.1\nlog_type error\ndetect off\n${capture ? `capture_sink logstash tcp://127.0.0.1:${receiverPort}\ncapture_spool_dir ${join(dir, 'spool')}\n` : ''}`,
  );
  const broker = spawn(
    process.execPath,
    [
      ...BROKER_NODE_FLAGS,
      ...(process.env.BENCH_PROF && capture ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []),
      '--import',
      'tsx',
      join(root, 'app', 'cli.ts'),
      '-c',
      conf,
    ],
    { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  await waitPort(port);
  const m = await measureFanIn(`mqtt://127.0.0.1:${port}`, [broker.pid!, receiverPid], SECONDS, WARMUP_S);
  const metrics = capture ? await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text() : undefined;
  const spooled = Number(/mqprobe_capture_spool_bytes\{[^}]*\} (\d+)/.exec(metrics ?? '')?.[1] ?? 0);
  broker.kill('SIGTERM');
  await new Promise((r) => broker.once('exit', r));
  return { rate: m.rate, metrics, spooled, brokerCpu: m.cores[0], receiverCpu: m.cores[1], usPerMessage: m.usPerMessage };
}

const receiver = spawn(process.execPath, ['--import', 'tsx', join(root, 'bench', 'capture', 'receiver.ts')], {
  cwd: root,
  stdio: ['pipe', 'pipe', 'inherit'],
});
const { port: receiverPort } = JSON.parse(await firstLine(receiver)) as { port: number };
const results: { capture: boolean; rate: number; us: number }[] = [];
for (let r = 0; r < ROUNDS; r++) {
  for (const capture of [false, true]) {
    const res = await run(capture, receiverPort, receiver.pid!);
    results.push({ capture, rate: res.rate, us: res.usPerMessage });
    const drops = [...(res.metrics ?? '').matchAll(/mqprobe_capture_dropped_total\{[^}]*reason="([^"]+)"\} (\d+)/g)];
    if (process.env.BENCH_DEBUG)
      console.log(
        (res.metrics ?? '')
          .split('\n')
          .filter((l) => l.startsWith('mqprobe_capture'))
          .join('\n'),
      );
    const dropped = drops.map((m) => `${m[2]} (${m[1]})`).join(', ') || '0';
    console.log(
      `round ${r + 1} capture ${capture ? 'on ' : 'off'}: ${Math.round(res.rate).toLocaleString('en-US')} msg/s delivered, broker ${res.brokerCpu.toFixed(2)} cores = ${res.usPerMessage.toFixed(1)} µs CPU per message, receiver ${res.receiverCpu.toFixed(2)} cores${capture ? `, capture drops ${dropped}, spool ${(res.spooled / 1e6).toFixed(0)} MB at the end of the run` : ''}`,
    );
  }
}
receiver.stdin!.write('report\n');
const counts = JSON.parse(await firstLine(receiver)) as { lines: number; bytes: number };
receiver.stdin!.end();
const avg = (on: boolean, k: 'rate' | 'us') => results.filter((x) => x.capture === on).reduce((s, x) => s + x[k], 0) / ROUNDS;
const off = avg(false, 'rate');
const on = avg(true, 'rate');
console.log(
  `capture off: ${Math.round(off).toLocaleString('en-US')} msg/s; capture on: ${Math.round(on).toLocaleString('en-US')} msg/s; throughput cost ${(((off - on) / off) * 100).toFixed(1)}%`,
);
console.log(
  `broker CPU per delivered message: off ${avg(false, 'us').toFixed(1)} µs, on ${avg(true, 'us').toFixed(1)} µs (+${(avg(true, 'us') - avg(false, 'us')).toFixed(1)} µs)`,
);
console.log(`receiver got ${counts.lines.toLocaleString('en-US')} events (${(counts.bytes / 1e6).toFixed(0)} MB) over all capture-on runs`);
