/**
 * kill -9 of a broker process under load, then a restart on the same capture_spool_dir: with
 * `capture_queue disk` the receiver (go-lumber's Lumberjack v2 server, test/peers/lumberjack) gets
 * every sequence of the killed run up to the last one written, and the restarted broker's
 * capture-dropped (reason crash) names the rest; with the memory queue the lost range is named.
 */
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import { freePort, spawnCli, tempDir, waitForPort, type BrokerProcess } from '../helpers/broker.js';
import { startLumberjack, type LumberjackPeer } from '../helpers/lumberjack.js';
import { until } from '../helpers/mqtt.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function broker(t: Test, conf: string, port: number): Promise<BrokerProcess> {
  const p = spawnCli(t, ['-c', conf]);
  await waitForPort(port, 30_000).catch((err: Error) => {
    t.comment(p.output());
    throw err;
  });
  return p;
}

/** QoS 0 publishes as fast as the socket takes them, until stopped. */
function flood(c: MqttClient): { stop(): Promise<number> } {
  let on = true;
  let sent = 0;
  const done = (async () => {
    while (on) {
      for (let i = 0; i < 200; i++) c.publish(`load/${sent % 7}`, `m${sent++}`);
      await sleep(2);
    }
  })();
  return {
    async stop() {
      on = false;
      await done;
      return sent;
    },
  };
}

interface Runs {
  /** Distinct event.sequence numbers received per run (service.id), and the crash reports. */
  seqs: Map<string, Set<number>>;
  crashes: Record<string, any>[];
}

function byRun(rx: LumberjackPeer[]): Runs {
  const seqs = new Map<string, Set<number>>();
  const crashes: Record<string, any>[] = [];
  for (const e of rx.flatMap((r) => r.events())) {
    const run = e.service.id as string;
    if (!seqs.has(run)) seqs.set(run, new Set());
    seqs.get(run)!.add(e.event.sequence);
    if (e.event.action === 'capture-dropped' && e.event.reason === 'crash' && !crashes.some((c) => c.event.id === e.event.id))
      crashes.push(e);
  }
  return { seqs, crashes };
}

const largest = (s: Iterable<number>) => {
  let max = -Infinity;
  for (const n of s) if (n > max) max = n;
  return max;
};

const holes = (s: Set<number>) => {
  const max = largest(s); // Math.max(...s) overflows the stack past ~120,000 sequences
  const missing: number[] = [];
  for (let i = 1; i <= max; i++) if (!s.has(i)) missing.push(i);
  return missing;
};

async function killedUnderLoad(t: Test, queue: 'disk' | 'memory', rx: LumberjackPeer, holdFirst: boolean) {
  const dir = tempDir();
  const port = await freePort();
  const conf = join(dir, 'mqprobe.conf');
  writeFileSync(
    conf,
    // spool and log are in a root-only temp folder: stay root (mqprobe drops to user mosquitto by default)
    // memory: a queue that holds the whole held-back window, so the kill finds it in memory, not spooled
    `listener ${port} 127.0.0.1\nallow_anonymous true\ncapture_sink beats tcp://127.0.0.1:${rx.port}\ncapture_spool_dir ${join(dir, 'spool')}\ncapture_queue ${queue}\n${queue === 'memory' ? 'capture_queue_max 2000000\n' : ''}log_dest file ${join(dir, 'broker.log')}\nuser root\n`,
  );
  const first = await broker(t, conf, port);
  const c = await connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'loader', reconnectPeriod: 0 });
  c.on('error', () => {});
  const load = flood(c);
  await sleep(1500);
  // the receiver stops acknowledging: the broker's queue grows, then the broker is killed
  if (holdFirst) rx.hold();
  await sleep(1500);
  first.child.kill('SIGKILL');
  await first.exited;
  const sent = await load.stop();
  c.end(true);
  rx.ack();
  const second = await broker(t, conf, port);
  await until(() => byRun([rx]).crashes.length > 0, 30_000, 'the crash report');
  second.child.kill('SIGTERM');
  await second.exited;
  return { sent, dir };
}

t.test('capture_queue disk: kill -9 under load loses nothing written to the queue; the restart sends it and names the rest', async (t) => {
  const rx = await startLumberjack(t);
  const { sent } = await killedUnderLoad(t, 'disk', rx, true);
  const { seqs, crashes } = byRun([rx]);
  t.equal(crashes.length, 1, 'one capture-dropped (crash) for the one sink');
  const crash = crashes[0];
  const killed = crash.mqprobe.capture.run as string;
  const got = seqs.get(killed)!;
  t.ok(got, 'events of the killed run arrived');
  t.same(holes(got), [], `no hole in the killed run's sequence numbers (${got.size} events of ${sent} publishes)`);
  t.equal(crash.mqprobe.capture.first_sequence, largest(got) + 1, 'the crash report starts right after the last event that arrived');
  t.comment(`crash report: ${crash.message}`);
  const restarted = [...seqs.keys()].find((r) => r !== killed)!;
  t.same(holes(seqs.get(restarted)!), [], 'the restarted run complete');
});

t.test(
  'capture_queue memory: kill -9 with events queued; the restart names a range covering what the receiver lacks (an upper bound)',
  async (t) => {
    const rx = await startLumberjack(t);
    await killedUnderLoad(t, 'memory', rx, true);
    const { seqs, crashes } = byRun([rx]);
    t.equal(crashes.length, 1, 'one capture-dropped (crash)');
    const c = crashes[0].mqprobe.capture;
    const got = seqs.get(c.run)!;
    const max = largest(got);
    t.same(holes(got), [], 'the receiver has 1..N of the killed run (in-order delivery)');
    t.ok(c.first_sequence <= max + 1, `the named range starts at or before the first missing sequence (${c.first_sequence} <= ${max + 1})`);
    t.ok(
      c.dropped > 1000 && c.last_sequence === c.first_sequence + c.dropped - 1,
      `a large range was lost and is named (${c.first_sequence}-${c.last_sequence})`,
    );
    const arrivedInRange = [...got].filter((s) => s >= c.first_sequence).length;
    t.comment(
      `${c.dropped} named; ${arrivedInRange} of them had in fact arrived (the acknowledged position in the state file is up to 1 s old)`,
    );
  },
);
