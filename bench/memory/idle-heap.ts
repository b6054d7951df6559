/**
 * Where the memory of idle connections goes: starts a broker (mqprobe, bare Aedes or the Node
 * floor), takes a V8 heap snapshot with no client, connects N idle MQTT 3.1.1 clients, takes a
 * second one, and prints the live heap growth per client grouped by constructor (the snapshot's
 * node name) beside the RSS growth. A snapshot collects garbage first, so what it shows is what
 * the connections keep alive; RSS minus the live heap is the young generation, fragmentation and
 * native memory (sockets, buffers outside the heap).
 *
 *   npx tsx bench/memory/idle-heap.ts [--clients 2000] [--broker mqprobe|mqprobe-detect|aedes|node-floor] [--top 30]
 *     [--retainers 'object:Buffer,array:'] [--flags=--max-semi-space-size=32] [--rss-only] [--scopes] [--settle 2]
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';
import { RawClient } from '../harness/load/client.js';
import { encodeConnect, PACKET } from '../harness/load/packets.js';
import { rssKb } from '../harness/proc.js';
import { freePort, nodeCommand, start, stop, waitListening } from '../harness/processes.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '2000' },
    broker: { type: 'string', default: 'mqprobe' },
    top: { type: 'string', default: '30' },
    /** Also list who holds the objects of these kinds (comma list of "type:name" as printed). */
    retainers: { type: 'string', default: '' },
    /** RSS growth only, no snapshots (a snapshot itself grows the RSS, so the first figure is rough). */
    'rss-only': { type: 'boolean', default: false },
    /** Name anonymous closures by the variables they close over. */
    scopes: { type: 'boolean', default: false },
    /** Seconds of quiet after the last CONNACK before the RSS is read (the bench's D waits 2). */
    settle: { type: 'string', default: '2' },
    flags: { type: 'string', default: BROKER_NODE_FLAGS.join(' ') },
  },
});
const clients = Number(values.clients);
const dir = mkdtempSync(join(tmpdir(), 'idle-heap-'));
// mqprobe started as root drops to the mosquitto user (as Mosquitto does) and must still write here
chmodSync(dir, 0o777);
const port = await freePort();
const nodeFlags = [...values.flags.split(' ').filter(Boolean), '--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`];

function brokerArgv(): string[] {
  if (values.broker === 'node-floor' || values.broker === 'aedes')
    return nodeCommand(`bench/harness/servers/${values.broker}`, [String(port)], nodeFlags);
  const conf = join(dir, 'mqprobe.conf');
  writeFileSync(
    conf,
    [`listener ${port} 127.0.0.1`, 'allow_anonymous true', ...(values.broker === 'mqprobe' ? ['detect off'] : [])].join('\n') + '\n',
  );
  return nodeCommand('app/cli', ['-c', conf], nodeFlags);
}

const broker = start(brokerArgv(), { logFile: join(dir, 'broker.log') });
await waitListening(port, broker);

/** Signals the broker and waits until a new snapshot file has stopped growing. */
async function snapshot(): Promise<string> {
  const before = new Set(readdirSync(dir));
  broker.child.kill('SIGUSR2');
  for (let last = -1; ; await sleep(500)) {
    const file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (broker.child.exitCode !== null) throw new Error(`the broker exited; see ${join(dir, 'broker.log')}`);
    if (!file) continue;
    const size = statSync(join(dir, file)).size;
    if (size > 0 && size === last) return join(dir, file);
    last = size;
  }
}

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Index of each node's first edge in `edges` (nodes list their edges in order). */
function firstEdges(s: HeapSnapshot): Map<number, number> {
  const nf = s.snapshot.meta.node_fields;
  const [nWidth, iEdges, eWidth] = [nf.length, nf.indexOf('edge_count'), s.snapshot.meta.edge_fields.length];
  const out = new Map<number, number>();
  for (let node = 0, edge = 0; node < s.nodes.length; node += nWidth) {
    out.set(node, edge);
    edge += s.nodes[node + iEdges] * eWidth;
  }
  return out;
}

/**
 * An anonymous closure is named by the variables of the scope it closes over (its context's
 * named edges), which is usually enough to find it in the source.
 */
function scopeOf(s: HeapSnapshot, closure: number, first: Map<number, number>): string {
  const nf = s.snapshot.meta.node_fields;
  const ef = s.snapshot.meta.edge_fields;
  const [iEdges, eWidth, iEName, iTo, iEType] = [
    nf.indexOf('edge_count'),
    ef.length,
    ef.indexOf('name_or_index'),
    ef.indexOf('to_node'),
    ef.indexOf('type'),
  ];
  const edgeTypes = s.snapshot.meta.edge_types[0];
  const edgesOf = function* (node: number) {
    const start = first.get(node)!;
    for (let k = 0; k < s.nodes[node + iEdges]; k++) yield start + k * eWidth;
  };
  for (const e of edgesOf(closure)) {
    if (edgeTypes[s.edges[e + iEType]] !== 'internal' || s.strings[s.edges[e + iEName]] !== 'context') continue;
    const names = [...edgesOf(s.edges[e + iTo])]
      .filter((c) => edgeTypes[s.edges[c + iEType]] === 'context')
      .map((c) => s.strings[s.edges[c + iEName]]);
    return `{${names.slice(0, 6).join(',')}}`;
  }
  return '';
}

function kindOf(s: HeapSnapshot, node: number, first?: Map<number, number>): string {
  const f = s.snapshot.meta.node_fields;
  const type = s.snapshot.meta.node_types[0][s.nodes[node + f.indexOf('type')]];
  // strings and code are grouped by type: their names are their contents
  const name =
    type === 'object' || type === 'closure' || type === 'native' ? s.strings[s.nodes[node + f.indexOf('name')]].slice(0, 60) : '';
  return `${type}:${name || (first && type === 'closure' ? scopeOf(s, node, first) : '')}`;
}

/** For every node of the wanted kinds: "holder kind .edge" → count (weak edges left out). */
function retainersOf(s: HeapSnapshot, wanted: Set<string>): Map<string, number> {
  const nf = s.snapshot.meta.node_fields;
  const ef = s.snapshot.meta.edge_fields;
  const edgeTypes = s.snapshot.meta.edge_types[0];
  const [nWidth, iEdges] = [nf.length, nf.indexOf('edge_count')];
  const [eWidth, iEType, iEName, iTo] = [ef.length, ef.indexOf('type'), ef.indexOf('name_or_index'), ef.indexOf('to_node')];
  const out = new Map<string, number>();
  for (let node = 0, edge = 0; node < s.nodes.length; node += nWidth) {
    for (let k = 0; k < s.nodes[node + iEdges]; k++, edge += eWidth) {
      const to = s.edges[edge + iTo];
      const et = edgeTypes[s.edges[edge + iEType]];
      if (et === 'weak' || !wanted.has(kindOf(s, to))) continue;
      const label = et === 'element' || et === 'hidden' ? `[${et}]` : `.${s.strings[s.edges[edge + iEName]]}`;
      const key = `${kindOf(s, to)} ← ${kindOf(s, node)} ${label}`;
      out.set(key, (out.get(key) ?? 0) + 1);
    }
  }
  return out;
}

/** Self size per "type:name" over every node of a snapshot. */
function bytesByKind(s: HeapSnapshot): Map<string, { bytes: number; count: number }> {
  const first = values.scopes ? firstEdges(s) : undefined;
  const f = s.snapshot.meta.node_fields;
  const [iSize, width] = [f.indexOf('self_size'), f.length];
  const out = new Map<string, { bytes: number; count: number }>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const key = kindOf(s, i, first);
    const e = out.get(key) ?? { bytes: 0, count: 0 };
    e.bytes += s.nodes[i + iSize];
    e.count++;
    out.set(key, e);
  }
  return out;
}

const read = async () => JSON.parse(readFileSync(await snapshot(), 'utf8')) as HeapSnapshot;

/** Connects n idle clients, 100 handshakes at a time. */
async function connectIdle(n: number, prefix: string): Promise<RawClient[]> {
  const held: RawClient[] = [];
  for (let i = 0; i < n; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, n - i) }, (_, j) => {
        const c = new RawClient(port);
        held.push(c);
        return c.request(encodeConnect({ clientId: `${prefix}${i + j}` }), PACKET.CONNACK);
      }),
    );
  }
  return held;
}

// a first round connects and leaves, so the code it compiles and the pools it fills are in the baseline
for (const c of await connectIdle(200, 'warm')) c.socket.destroy();
await sleep(1000);
const rss0 = rssKb(broker.child.pid!) ?? 0;
const base = values['rss-only'] ? undefined : bytesByKind(await read());
const held = await connectIdle(clients, 'idle');
await sleep(Number(values.settle) * 1000);
const rss1 = rssKb(broker.child.pid!) ?? 0;
console.log(
  `broker ${values.broker} (node flags: ${values.flags || 'none'}), ${clients} idle clients, RSS read after ${values.settle} s of quiet`,
);
console.log(`RSS growth per client:       ${((rss1 - rss0) / clients).toFixed(2)} KiB`);
async function finish(): Promise<never> {
  for (const c of held) c.socket.destroy();
  await stop(broker);
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
if (!base) await finish();
const afterSnapshot = await read();
const after = bytesByKind(afterSnapshot);

const rows = [...after.entries()]
  .map(([k, a]) => {
    const b = base!.get(k) ?? { bytes: 0, count: 0 };
    return { k, bytes: (a.bytes - b.bytes) / clients, count: (a.count - b.count) / clients };
  })
  .sort((x, y) => y.bytes - x.bytes);
const heapPerClient = rows.reduce((s, r) => s + r.bytes, 0);
console.log(`live JS heap growth per client: ${(heapPerClient / 1024).toFixed(2)} KiB`);
console.log(`\n| kind (snapshot type:name) | bytes per client | objects per client |\n|---|---:|---:|`);
for (const r of rows.slice(0, Number(values.top)))
  console.log(`| ${r.k.replaceAll('|', '\\|')} | ${r.bytes.toFixed(0)} | ${r.count.toFixed(2)} |`);
if (values.retainers) {
  const held = [...retainersOf(afterSnapshot, new Set(values.retainers.split(','))).entries()].sort((a, b) => b[1] - a[1]);
  console.log(`\n| held object ← holder .edge | per client |\n|---|---:|`);
  for (const [k, n] of held.slice(0, Number(values.top))) console.log(`| ${k.replaceAll('|', '\\|')} | ${(n / clients).toFixed(2)} |`);
}
await finish();
