/**
 * The correlator's cost (docs/correlation.md), two figures:
 *
 * 1. Memory per tracked socket: the heap a Correlator holds for N socket rows of realistic shape
 *    (process_open_sockets joined with processes, as the osquery beats emit them), measured after a
 *    forced GC (`--expose-gc`).
 * 2. Correlated flows per second of the join alone (Zeek record → flow → match → the published record's
 *    JSON), with the sockets tracked.
 * 3. Correlated flows per second with 10,000 tracked sockets, through the real broker in this process:
 *    the Fleet beat tails a result log holding 10,000 socket rows of one host, then the Zeek beat tails a
 *    conn log of F flows each explained by one of them; the rate is F over the time from writing the conn
 *    log to the last `beats/correlate/conn` publish. Zeek parsing, the broker's publishes and capture
 *    (to a file) are in the figure, as in production.
 *
 *   node --expose-gc --import tsx bench/correlate/join.ts [sockets=10000] [flows=20000]
 */
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../app/config.js';
import { startBroker } from '../../app/assemble.js';
import { Correlator } from '../../bridges/correlate/correlator.js';
import { defaultCorrelateConfig } from '../../bridges/correlate/config.js';
import { flowOf, rowFact } from '../../bridges/correlate/inputs.js';
import { connRecord } from '../../bridges/correlate/output.js';

const SOCKETS = Number(process.argv[2] ?? 10_000);
const FLOWS = Number(process.argv[3] ?? 20_000);
const T = 1_718_006_400;
const HOST = '198.51.100.7';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

/** Socket i of the benchmark host: one process per 50 sockets, distinct 4-tuples. */
function columns(i: number): Record<string, string> {
  const pid = 1000 + Math.floor(i / 50);
  return {
    pid: String(pid),
    socket: String(40000 + i),
    family: '2',
    protocol: '6',
    local_address: HOST,
    local_port: String(20000 + (i % 40000)),
    remote_address: `203.0.${113 + Math.floor(i / 40000)}.${1 + (i % 250)}`,
    remote_port: '443',
    name: `worker-${pid}`,
    path: `/usr/lib/app/bin/worker-${pid}`,
    cmdline: `/usr/lib/app/bin/worker-${pid} --serve --config /etc/app/worker.conf`,
    uid: '1000',
    username: 'app',
  };
}

function conn(i: number): Record<string, unknown> {
  const c = columns(i % SOCKETS);
  return {
    ts: T + i / 1000,
    uid: `Cbench${i}`,
    'id.orig_h': HOST,
    'id.orig_p': Number(c.local_port),
    'id.resp_h': c.remote_address,
    'id.resp_p': 443,
    proto: 'tcp',
    service: 'ssl',
    duration: 0.5,
    orig_bytes: 500,
    resp_bytes: 4000,
    conn_state: 'SF',
    missed_bytes: 0,
    history: 'ShADadFf',
    orig_pkts: 6,
    orig_ip_bytes: 820,
    resp_pkts: 5,
    resp_ip_bytes: 4268,
  };
}

function memoryPerSocket(n: number): number {
  gc!();
  const before = process.memoryUsage().heapUsed;
  const c = new Correlator({ ...defaultCorrelateConfig(), maxSockets: n, maxSocketsPerHost: n }, { attributed() {}, unattributed() {} });
  for (let i = 0; i < n; i++) {
    const f = rowFact(
      { name: 'pack/net/process_open_sockets', hostIdentifier: 'bench-host', unixTime: T, columns: columns(i) },
      Date.now(),
    );
    if (f.kind === 'socket') c.addSocket(f.row, Date.now());
  }
  gc!();
  const bytes = process.memoryUsage().heapUsed - before;
  if (c.trackedSockets !== n) throw new Error(`tracked ${c.trackedSockets} of ${n}`);
  return bytes / n;
}

function joinPerSecond(): number {
  let bytes = 0;
  const c = new Correlator(
    { ...defaultCorrelateConfig(), maxSocketsPerHost: SOCKETS, maxPending: FLOWS },
    { attributed: (a) => (bytes += JSON.stringify(connRecord(a).data).length), unattributed() {} },
  );
  for (let i = 0; i < SOCKETS; i++) {
    const f = rowFact(
      { name: 'pack/net/process_open_sockets', hostIdentifier: 'bench-host', unixTime: T, columns: columns(i) },
      Date.now(),
    );
    if (f.kind === 'socket') c.addSocket(f.row, Date.now());
  }
  const records = Array.from({ length: FLOWS }, (_, i) => conn(i));
  const start = performance.now();
  for (const r of records) {
    const flow = flowOf(r);
    if (typeof flow !== 'string') c.addFlow(flow, Date.now());
  }
  const seconds = (performance.now() - start) / 1000;
  if (c.counters.attributed !== FLOWS || bytes === 0) throw new Error(`attributed ${c.counters.attributed} of ${FLOWS}`);
  return FLOWS / seconds;
}

async function flowsPerSecond(): Promise<{ rate: number; seconds: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'mqprobe-bench-correlate-'));
  try {
    mkdirSync(join(dir, 'zeek'));
    const result = join(dir, 'osquery_result');
    writeFileSync(
      result,
      JSON.stringify({
        name: 'pack/net/process_open_sockets',
        hostIdentifier: 'bench-host',
        action: 'snapshot',
        unixTime: T,
        snapshot: Array.from({ length: SOCKETS }, (_, i) => columns(i)),
      }) + '\n',
    );
    const confFile = join(dir, 'mqprobe.conf');
    writeFileSync(
      confFile,
      [
        'listener 0 127.0.0.1',
        `persistence_location ${dir}`,
        `capture_sink file ${join(dir, 'capture.ndjson')}`,
        'beat zeek',
        'beat_output mqtt',
        `zeek_log_dir ${join(dir, 'zeek')}`,
        'beat fleet',
        'beat_output mqtt',
        `fleet_result_log ${result}`,
        'fleet_start beginning',
        'beat correlate',
        'beat_output mqtt',
        `correlate_max_sockets_per_host ${SOCKETS}`,
        `correlate_max_pending ${FLOWS}`,
        '',
      ].join('\n'),
    );
    const broker = await startBroker(loadConfig(confFile), { log: pino({ level: 'warn' }) });
    let correlated = 0;
    let last = 0;
    let rows = 0;
    broker.aedes.on('publish', (packet) => {
      if (packet.topic === 'beats/correlate/conn') {
        correlated++;
        last = performance.now();
      } else if (packet.topic.startsWith('beats/fleet/result/')) rows++;
    });
    while (rows < SOCKETS) await new Promise((r) => setTimeout(r, 50));
    const text = Array.from({ length: FLOWS }, (_, i) => JSON.stringify(conn(i))).join('\n') + '\n';
    const start = performance.now();
    appendFileSync(join(dir, 'zeek', 'conn.log'), text);
    const deadline = Date.now() + 300_000;
    while (correlated < FLOWS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await broker.close();
    if (correlated < FLOWS) throw new Error(`only ${correlated} of ${FLOWS} flows correlated`);
    const seconds = (last - start) / 1000;
    return { rate: FLOWS / seconds, seconds };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const perSocket = memoryPerSocket(SOCKETS);
const perSocketLarge = memoryPerSocket(100_000);
const joinRate = joinPerSecond();
const { rate, seconds } = await flowsPerSecond();
console.log(`memory per tracked socket: ${Math.round(perSocket)} B (${SOCKETS} sockets), ${Math.round(perSocketLarge)} B (100000 sockets)`);
console.log(`correlated flows/s with ${SOCKETS} tracked sockets, the join alone: ${Math.round(joinRate)}`);
console.log(
  `correlated flows/s with ${SOCKETS} tracked sockets, through the broker: ${Math.round(rate)} (${FLOWS} flows in ${seconds.toFixed(2)} s)`,
);
