/**
 * Engine evaluation for issue 19 (docs/engine.md): bare Aedes 1.2 (node_modules) against a bare
 * Aedes 2 beta installed elsewhere, on the bench harness's scenarios A, B, C and D, plus A, B and D
 * over MQTT 5 on the beta (1.2 refuses protocol level 5). Rounds alternate the engines; the summary gives
 * the range (min … max) and the median of every case, because this machine is shared and noisy.
 *
 *   mkdir /tmp/beta && cd /tmp/beta && npm init -y && npm install --save-exact aedes@2.0.0-beta.1
 *   npx tsx bench/engine/run.ts --beta /tmp/beta/node_modules/aedes [--rounds 3] [--duration 4] [--idle 5000]
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { aedesVersion, type BrokerVariant } from '../harness/brokers.js';
import { choosePinning, nodeCommand, pinSelf } from '../harness/processes.js';
import { createSetup, runOne, type RunRecord } from '../harness/runner.js';
import { scenarioCases, type ScenarioCase } from '../harness/scenarios.js';
import type { ConnectJob, FlowJob } from '../harness/load/jobs.js';

const { values } = parseArgs({
  options: {
    beta: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '4' },
    idle: { type: 'string', default: '5000' },
    cases: { type: 'string', default: 'A,B,C,A5,B5,D,D5' },
    out: { type: 'string', default: join(import.meta.dirname, 'results.jsonl') },
  },
});
const beta = values.beta;
if (!beta || !existsSync(join(beta, 'aedes.js'))) {
  process.stderr.write(
    'bench/engine: --beta must name an installed Aedes package folder (with aedes.js; its dependencies resolvable from there)\n',
  );
  process.exit(2);
}
const betaVersion = (JSON.parse(readFileSync(join(beta, 'package.json'), 'utf8')) as { version: string }).version;

const engine = (id: string, label: string, folder?: string): BrokerVariant => ({
  id,
  label,
  description: `bare ${label} on a net.Server`,
  receiver: false,
  auth: false,
  graceful: false,
  command: (ctx) => nodeCommand('bench/harness/servers/aedes', [String(ctx.port), ...(folder ? [folder] : [])]),
});
const current = engine('aedes-current', `Aedes ${aedesVersion()}`);
const candidate = engine('aedes-beta', `Aedes ${betaVersion}`, beta);

/** The harness case run over MQTT 5 instead (same load, same checks). */
const overMqtt5 = (sc: ScenarioCase, id = `${sc.id}5`): ScenarioCase => ({
  ...sc,
  id,
  short: `${sc.short}, MQTT 5`,
  job: (c) => ({ ...(sc.job(c) as FlowJob | ConnectJob), protocolVersion: 5 }),
});

const idle = Number(values.idle);
const profile = {
  name: 'engine',
  rounds: Number(values.rounds),
  warmupMs: 1000,
  durationMs: Number(values.duration) * 1000,
  idleClients: [idle],
  stormClients: 0,
  stormWarmupClients: 0,
  reconnectClients: 0,
  settleMs: 2000,
};
const base = scenarioCases(profile);
const byId = (id: string) => base.find((c) => c.id === id)!;
const wanted = values.cases.split(',');
const plan: { sc: ScenarioCase; variants: BrokerVariant[] }[] = [];
for (const id of wanted) {
  if (id === 'D') plan.push({ sc: byId(`D-${idle}`), variants: [current, candidate] });
  else if (id === 'D5') plan.push({ sc: overMqtt5(byId(`D-${idle}`), `D5-${idle}`), variants: [candidate] });
  else if (/^[ABC]5$/.test(id)) plan.push({ sc: overMqtt5(byId(id[0])), variants: [candidate] });
  else if (/^[ABC]$/.test(id)) plan.push({ sc: byId(id), variants: [current, candidate] });
  else {
    process.stderr.write(`bench/engine: unknown case ${id} (A, B, C, A5, B5, C5, D, D5)\n`);
    process.exit(2);
  }
}

/**
 * Throughput per second of broker CPU: on a shared machine the broker gets whatever CPU is left,
 * so msg/s swings with the neighbours' load, while the CPU a message costs barely does.
 */
const CPU_METRICS = [
  { key: 'msg_per_cpu_s', unit: 'msg/CPU-s' },
  { key: 'broker_wait_pct', unit: '% CPU wait' },
];
function addCpuMetrics(r: RunRecord): void {
  if (r.result?.kind !== 'flow') return;
  const { broker, brokerWait } = r.result.cpu;
  if (broker) r.metrics.msg_per_cpu_s = r.result.deliveredPerSec / (broker / 100);
  if (brokerWait !== undefined) r.metrics.broker_wait_pct = brokerWait;
}

const pinning = choosePinning(true);
pinSelf(pinning.load);
const setup = createSetup(pinning, Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100);
const records: RunRecord[] = [];
for (let round = 1; round <= profile.rounds; round++) {
  for (const { sc, variants } of plan) {
    // alternate which engine goes first, so a slow spell of the shared machine hits both
    const order = round % 2 ? variants : [...variants].reverse();
    for (const v of order) {
      const r = await runOne(setup, sc, v, round, () => undefined);
      addCpuMetrics(r);
      records.push(r);
      appendFileSync(values.out, `${JSON.stringify({ ...r, engine: v.label, result: undefined })}\n`);
      const figures = Object.entries(r.metrics).map(([k, x]) => `${k}=${x === undefined ? '—' : Math.round(x * 100) / 100}`);
      process.stdout.write(
        `${sc.id.padEnd(7)} ${v.label.padEnd(20)} round ${round}: ${figures.join(' ')} load ${r.loadavg.join('/')}${r.ok ? '' : `  PROBLEMS: ${r.problems.join('; ')}`}\n`,
      );
    }
  }
}

process.stdout.write('\ncase    engine               metric        min … max (median), n\n');
for (const { sc, variants } of plan)
  for (const v of variants)
    for (const m of [...sc.metrics, ...(sc.scenario === 'D' ? [] : CPU_METRICS)]) {
      const xs = records
        .filter((r) => r.case === sc.id && r.variant === v.id && r.ok)
        .map((r) => r.metrics[m.key])
        .filter((x): x is number => x !== undefined)
        .sort((a, b) => a - b);
      const fmt = (x: number) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(2));
      const text = xs.length
        ? `${fmt(xs[0])} … ${fmt(xs[xs.length - 1])} (${fmt(xs[Math.floor((xs.length - 1) / 2)])}), ${xs.length}`
        : 'no successful run';
      process.stdout.write(`${sc.id.padEnd(7)} ${v.label.padEnd(20)} ${m.unit.padEnd(13)} ${text}\n`);
    }
