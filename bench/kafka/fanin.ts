/**
 * What the Kafka capture sink costs the broker: QoS 0 fan-in (4 publishers → 1 subscriber, 64-byte payloads,
 * bench/harness/fanin.ts) against Mosquitto, mqprobe without capture, mqprobe with `capture_sink file` and
 * mqprobe with `capture_sink kafka` (a one-node Kafka on the same machine, test/helpers/kafka.ts), in one run,
 * each in its own process with `detect off`. Both sinks run in the capture thread; the Kafka sink spools
 * (capture_spool_dir) what Kafka does not take as fast as events come.
 *
 *   npx tsx bench/kafka/fanin.ts [seconds per broker=8] [rounds=1]
 *
 * Per run: msg/s the publishers got in and msg/s delivered, broker CPU per published message, MQTT messages lost
 * (published − received: QoS 0 dropped for a subscriber that falls behind), and for the capture runs the events
 * recorded, those at the destination once mqprobe stopped, those left in the spool, and those dropped.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';
import { newTopic, startKafka, type KafkaPeer } from '../../test/helpers/kafka.js';
import { measureFanIn, type FanInResult } from '../harness/fanin.js';
import { mosquittoOnFreePort } from '../harness/brokers.js';
import { freePort, nodeCommand, start, stop, waitListening } from '../harness/processes.js';

const SECONDS = Number(process.argv[2] ?? 8);
const ROUNDS = Number(process.argv[3] ?? 1);
const WARMUP_S = 2;

type Variant = 'mosquitto' | 'mqprobe' | 'mqprobe + file sink' | 'mqprobe + kafka sink';

interface Capture {
  /** event.sequence when the flood had ended: events recorded. */
  recorded: number;
  /** Events at the destination after mqprobe stopped (lines in the files, records in the topic). */
  arrived: number;
  /** Bytes in the spool when the flood ended, and events left in it after the stop (the next start sends them). */
  spoolBytes: number;
  spooledAfterStop: number;
  dropped: number;
}

/** Lines in the event files of a folder and its subfolders (capture files and their rotations, spool segments). */
function lines(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) n += lines(join(dir, e.name));
    else if (e.name.includes('.ndjson')) {
      const b = readFileSync(join(dir, e.name));
      for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
    }
  }
  return n;
}

const metric = (text: string, name: string) =>
  [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'gm'))].reduce((s, m) => s + Number(m[1]), 0);

type Result = FanInResult & { capture?: Capture };

/** One broker's run in a fresh folder, removed afterwards (a Kafka run leaves its spool there). */
async function run(variant: Variant, kafka: KafkaPeer): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'mqprobe-bench-'));
  try {
    return await runIn(dir, variant, kafka);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runIn(dir: string, variant: Variant, kafka: KafkaPeer): Promise<Result> {
  chmodSync(dir, 0o755);
  const log = join(dir, 'broker.log');
  if (variant === 'mosquitto') {
    const m = (await mosquittoOnFreePort(dir))!;
    const p = start(m.argv, { logFile: log });
    await waitListening(m.port, p);
    const r = await measureFanIn(`mqtt://127.0.0.1:${m.port}`, [p.child.pid!], SECONDS, WARMUP_S);
    await stop(p, 'SIGTERM');
    return r;
  }
  const port = await freePort();
  const httpPort = await freePort();
  const topic = variant === 'mqprobe + kafka sink' ? await newTopic(kafka, 'fanin') : '';
  const sink = {
    mqprobe: '',
    'mqprobe + file sink': `capture_sink file ${join(dir, 'events', 'events.ndjson')}\n`,
    'mqprobe + kafka sink': `capture_sink kafka kafka://${kafka.bootstrap}/${topic}\ncapture_spool_dir ${join(dir, 'spool')}\n`,
  }[variant];
  // mqprobe started as root runs as user mosquitto, as Mosquitto does: the file sink's folder is its to write; the
  // spool folder is left for mqprobe to create (it gives what it created to that user)
  mkdirSync(join(dir, 'events'));
  chmodSync(join(dir, 'events'), 0o777);
  const conf = join(dir, 'mqprobe.conf');
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous true\nhttp_listener ${httpPort} 127.0.0.1\nlog_type error\ndetect off\n${sink}`,
  );
  const p = start(nodeCommand('app/cli', ['-c', conf], BROKER_NODE_FLAGS), { logFile: log });
  await waitListening(port, p);
  const r = await measureFanIn(`mqtt://127.0.0.1:${port}`, [p.child.pid!], SECONDS, WARMUP_S);
  if (!sink) {
    await stop(p, 'SIGTERM');
    return r;
  }
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  // a graceful stop gives the sinks 5 s to deliver; what remains is in the spool
  await stop(p, 'SIGTERM', 60_000);
  const arrived = variant === 'mqprobe + kafka sink' ? await kafka.count(topic) : lines(join(dir, 'events'));
  return {
    ...r,
    capture: {
      recorded: metric(text, 'mqprobe_capture_sequence'),
      arrived,
      spoolBytes: metric(text, 'mqprobe_capture_spool_bytes'),
      spooledAfterStop: existsSync(join(dir, 'spool')) ? lines(join(dir, 'spool')) : 0,
      dropped: metric(text, 'mqprobe_capture_dropped_total'),
    },
  };
}

const cleanups: (() => unknown)[] = [];
try {
  const kafka = await startKafka({ teardown: (fn) => cleanups.push(fn) }, { autoCreate: false });
  const variants: Variant[] = ['mosquitto', 'mqprobe', 'mqprobe + file sink', 'mqprobe + kafka sink'];
  const results = new Map<Variant, FanInResult[]>(variants.map((v) => [v, []]));
  for (let round = 1; round <= ROUNDS; round++)
    for (const v of variants) {
      const r = await run(v, kafka);
      results.get(v)!.push(r);
      const c = r.capture;
      console.log(
        `round ${round} ${v}: ${Math.round(r.intake).toLocaleString('en-US')} msg/s in, ${Math.round(r.rate).toLocaleString('en-US')} ` +
          `delivered; broker ${r.cores[0].toFixed(2)} cores = ${r.usPerPublished.toFixed(1)} µs CPU per published message ` +
          `(${r.usPerMessage.toFixed(1)} per delivered); MQTT lost ${(r.published - r.received).toLocaleString('en-US')} of ` +
          `${r.published.toLocaleString('en-US')}` +
          (c
            ? `; capture: ${c.recorded.toLocaleString('en-US')} events recorded, ${c.arrived.toLocaleString('en-US')} at the destination ` +
              `after the stop, ${c.spooledAfterStop.toLocaleString('en-US')} left in the spool (${(c.spoolBytes / 1e6).toFixed(0)} MB ` +
              `when the flood ended), ${c.dropped} dropped`
            : ''),
      );
    }
  const mean = (v: Variant, k: 'rate' | 'intake' | 'usPerPublished') => results.get(v)!.reduce((s, r) => s + r[k], 0) / ROUNDS;
  const base = (k: 'rate' | 'intake') => mean('mosquitto', k);
  console.log(
    `\n| broker | msg/s in | × Mosquitto | delivered msg/s | × Mosquitto | broker µs CPU per published message |\n| --- | --- | --- | --- | --- | --- |`,
  );
  for (const v of variants)
    console.log(
      `| ${v} | ${Math.round(mean(v, 'intake')).toLocaleString('en-US')} | ${(mean(v, 'intake') / base('intake')).toFixed(2)} | ` +
        `${Math.round(mean(v, 'rate')).toLocaleString('en-US')} | ${(mean(v, 'rate') / base('rate')).toFixed(2)} | ${mean(v, 'usPerPublished').toFixed(1)} |`,
    );
  console.log(`load average at the end: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
