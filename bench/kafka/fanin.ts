/**
 * What the Kafka capture sink costs the broker: QoS 0 fan-in (4 publishers → 1 subscriber, 64-byte payloads,
 * bench/harness/fanin.ts) against Mosquitto, mqprobe without capture, mqprobe with `capture_sink file` and
 * mqprobe with `capture_sink kafka` (a one-node Kafka on the same machine, test/helpers/kafka.ts), in one run,
 * each in its own process with `detect off`. Both sinks run in the capture thread; the Kafka sink spools
 * (capture_spool_dir) what Kafka does not take as fast as events come.
 *
 *   npx tsx bench/kafka/fanin.ts [seconds per broker=8] [rounds=1]
 *
 * Per run: delivered msg/s, broker CPU per delivered message, MQTT messages lost (published − received), and for
 * the capture runs the events recorded, those at the destination once mqprobe stopped, spooled and dropped.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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
  spoolBytes: number;
  dropped: number;
}

const metric = (text: string, name: string) =>
  [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'gm'))].reduce((s, m) => s + Number(m[1]), 0);

async function run(variant: Variant, kafka: KafkaPeer): Promise<FanInResult & { capture?: Capture }> {
  const dir = mkdtempSync(join(tmpdir(), 'mqprobe-bench-'));
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
  // mqprobe started as root runs as user mosquitto, as Mosquitto does: the sinks' folders are theirs to write
  for (const d of ['events', 'spool']) {
    mkdirSync(join(dir, d));
    chmodSync(join(dir, d), 0o777);
  }
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
  const arrived =
    variant === 'mqprobe + kafka sink'
      ? await kafka.count(topic)
      : readdirSync(join(dir, 'events')).reduce((n, f) => n + (readFileSync(join(dir, 'events', f), 'utf8').match(/\n/g)?.length ?? 0), 0);
  return {
    ...r,
    capture: {
      recorded: metric(text, 'mqprobe_capture_sequence'),
      arrived,
      spoolBytes: metric(text, 'mqprobe_capture_spool_bytes'),
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
        `round ${round} ${v}: ${Math.round(r.rate).toLocaleString('en-US')} msg/s, broker ${r.cores[0].toFixed(2)} cores = ` +
          `${r.usPerMessage.toFixed(1)} µs CPU per message, MQTT lost ${(r.published - r.received).toLocaleString('en-US')} of ` +
          `${r.published.toLocaleString('en-US')}` +
          (c
            ? `; capture: ${c.recorded.toLocaleString('en-US')} events recorded, ${c.arrived.toLocaleString('en-US')} at the destination ` +
              `after the stop, ${(c.spoolBytes / 1e6).toFixed(0)} MB spooled at the end of the flood, ${c.dropped} dropped`
            : ''),
      );
    }
  const mean = (v: Variant, k: 'rate' | 'usPerMessage') => results.get(v)!.reduce((s, r) => s + r[k], 0) / ROUNDS;
  const base = mean('mosquitto', 'rate');
  console.log(`\n| broker | delivered msg/s | × Mosquitto | broker µs CPU per message |\n| --- | --- | --- | --- |`);
  for (const v of variants)
    console.log(
      `| ${v} | ${Math.round(mean(v, 'rate')).toLocaleString('en-US')} | ${(mean(v, 'rate') / base).toFixed(2)} | ${mean(v, 'usPerMessage').toFixed(1)} |`,
    );
  console.log(`load average at the end: ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
