/** The whole comparison: plan the runs, run them one by one with progress, print tables, write results. */
import { appendFileSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { aedesVersion, brokerVariants, findMosquitto, MOSQUITTO_MISSING, mosquittoVersion, type BrokerVariant } from './brokers.js';
import { cpuText, num } from './format.js';
import { machineInfo } from './machine.js';
import type { BenchOptions } from './options.js';
import { choosePinning, codeRoot, fromSource, pinSelf, repoRoot } from './processes.js';
import { RAW_FILE, writeResults } from './results.js';
import { createSetup, runOne, type RunRecord } from './runner.js';
import { fitsOpenFiles, raiseOpenFiles } from './fd-limit.js';
import { connectionsOf, scenarioCases, type ScenarioCase } from './scenarios.js';
import { caseMetrics, renderText, table, variantsFor } from './tables.js';

export interface BenchIo {
  out: NodeJS.WriteStream | NodeJS.WritableStream;
  isTTY: boolean;
  command: string;
}

/** Sources changed after the compiled copy in dist/ was built (running dist/ would measure old code). */
function staleDist(): string[] {
  if (fromSource) return [];
  const stale: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(repoRoot, dir), { withFileTypes: true })) {
      const rel = join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        const js = join(codeRoot, rel.replace(/\.ts$/, '.js'));
        try {
          if (statSync(join(repoRoot, rel)).mtimeMs > statSync(js).mtimeMs) stale.push(rel);
        } catch {
          stale.push(rel);
        }
      }
    }
  };
  for (const d of ['app', 'broker', 'capture', 'detect', 'bridges', 'bench']) walk(d);
  return stale;
}

function selectCases(all: ScenarioCase[], wanted: string[]): ScenarioCase[] {
  const picked = all.filter((c) => wanted.includes(c.scenario) || wanted.includes(c.id));
  const unknown = wanted.filter((w) => !all.some((c) => c.scenario === w || c.id === w));
  if (unknown.length)
    throw new Error(`--scenarios: no such scenario or case: ${unknown.join(', ')} (cases: ${all.map((c) => c.id).join(', ')})`);
  return picked;
}

function selectVariants(all: BrokerVariant[], wanted: string[] | undefined, mosquittoFound: boolean): BrokerVariant[] {
  if (!wanted) return all;
  const known = [...new Set(['mosquitto', ...all.map((v) => v.id)])];
  const unknown = wanted.filter((w) => !known.includes(w));
  if (unknown.length) throw new Error(`--brokers: unknown broker ${unknown.join(', ')} (expected ${known.join(', ')})`);
  if (wanted.includes('mosquitto') && !mosquittoFound) throw new Error(MOSQUITTO_MISSING);
  return wanted.map((w) => all.find((v) => v.id === w)!);
}

const mmss = (ms: number) => `${Math.floor(ms / 60_000)}m${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}s`;

function headline(r: RunRecord, sc: ScenarioCase): string {
  const figures = sc.metrics.map((m) => `${num(r.metrics[m.key])} ${m.unit}`).join(', ');
  const cpu = r.result?.cpu;
  const usage = cpu ? `, broker CPU ${cpuText(cpu.broker, cpu.brokerWait)}, load CPU ${cpuText(cpu.generator, cpu.generatorWait)}` : '';
  return `${r.ok ? 'ok' : 'PROBLEM'}  ${figures}${usage}${r.ok ? '' : ` — ${r.problems.join('; ').split('\n')[0]}`}`;
}

/**
 * Runs the benchmark; resolves with the number of runs that count as failures: runs that ended
 * without a result, and mqprobe runs with delivery problems. Another broker losing messages is a
 * finding, reported in the tables, not a failure of the bench.
 */
export async function runBench(opts: BenchOptions, io: BenchIo): Promise<number> {
  const say = (s: string) => io.out.write(`${s}\n`);
  const stale = staleDist();
  if (stale.length)
    say(
      `warning: dist/ is older than ${stale.length} source file(s) (e.g. ${stale[0]}): run \`npm run build\` first, or the old code is measured`,
    );

  const mosquittoBin = findMosquitto();
  const mosquitto = mosquittoBin ? mosquittoVersion(mosquittoBin) : undefined;
  if (!mosquittoBin) say(`note: ${MOSQUITTO_MISSING}`);
  const variants = selectVariants(brokerVariants(mosquittoBin, { mosquitto, aedes: aedesVersion() }), opts.brokers, !!mosquittoBin);
  const reference = variants.find((v) => v.id === 'mosquitto');
  const wanted = selectCases(scenarioCases(opts.profile), opts.scenarios);
  // before any broker starts: they inherit the limit. A case the limit cannot hold is left out, loudly
  const refusal = raiseOpenFiles(Math.max(0, ...wanted.map(connectionsOf)));
  const cases = wanted.filter((c) => fitsOpenFiles(connectionsOf(c)));
  for (const c of wanted.filter((c) => !cases.includes(c))) say(`⚠ ${c.id} left out: ${refusal}`);
  // only cases this machine cannot hold were asked for (D-50000 where the hard limit is 20,000): a failure, not 0 runs
  if (cases.length === 0) throw new Error(`none of the cases asked for can run here: ${refusal}`);
  const pinning = choosePinning(opts.pin);
  pinSelf(pinning.load);
  const machine = machineInfo();

  const setup = createSetup(pinning, machine.clockTicks, opts.cpuProf);
  const dir = setup.dir;

  const plan = cases.flatMap((sc) =>
    Array.from({ length: opts.profile.rounds }, (_, i) => variantsFor(sc, variants).map((v) => ({ sc, v, round: i + 1 }))).flat(),
  );
  const rawFile = join(opts.out, RAW_FILE);
  mkdirSync(dirname(rawFile), { recursive: true });
  writeFileSync(
    rawFile,
    `${JSON.stringify({ type: 'meta', started: new Date().toISOString(), command: io.command, profile: opts.profile, machine, pinning, mosquitto, variants: variants.map((v) => ({ id: v.id, label: v.label, description: v.description })) })}\n`,
  );

  say(
    `mqprobe bench: ${plan.length} runs (${cases.map((c) => c.id).join(', ')} × ${variants.map((v) => v.id).join(', ')} × ${opts.profile.rounds} round(s)), profile ${opts.profile.name}`,
  );
  say(pinning.broker ? `pinning: broker on CPU ${pinning.broker}, load on CPU ${pinning.load}` : `pinning: none (${pinning.reason})`);
  say(
    `load average now: ${machine.loadavg.join(', ')} on ${machine.cores} cores${machine.loadavg[0] > machine.cores / 2 ? ' — the machine is busy; expect noisy figures' : ''}`,
  );

  const started = new Date();
  const records: RunRecord[] = [];
  let status = '';
  const show = (s: string) => {
    status = s;
    if (io.isTTY) io.out.write(`\r\x1b[K${s}`);
  };
  const clearStatus = () => io.isTTY && status && io.out.write('\r\x1b[K');
  try {
    for (const [i, step] of plan.entries()) {
      const elapsed = Date.now() - started.getTime();
      const eta = i ? ` · about ${mmss((elapsed / i) * (plan.length - i))} left` : '';
      const head = `[${String(i + 1).padStart(String(plan.length).length)}/${plan.length}] ${mmss(elapsed)}${eta} · ${step.sc.id} · ${step.v.label} · round ${step.round}/${opts.profile.rounds}`;
      if (!io.isTTY) say(head);
      const record = await runOne(setup, step.sc, step.v, step.round, (phase, done, total) => {
        const frac =
          done !== undefined && total
            ? ` ${phase === 'measuring' ? `${(done / 1000).toFixed(1)}/${(total / 1000).toFixed(1)} s` : `${done}/${total}`}`
            : '';
        show(`${head} · ${phase}${frac}`);
      });
      records.push(record);
      appendFileSync(rawFile, `${JSON.stringify({ type: 'run', ...record })}\n`);
      clearStatus();
      say(`${io.isTTY ? `${head} · ` : '    '}${headline(record, step.sc)}`);
      const next = plan[i + 1];
      if (!next || next.sc !== step.sc) {
        for (const cm of caseMetrics(records, step.sc, variants, reference?.id)) say(`\n${renderText(table(cm, reference?.label))}\n`);
      }
    }
  } finally {
    if (opts.keep) say(`configs and broker logs kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }

  const written = writeResults(opts.out, records, cases, {
    started,
    finished: new Date(),
    command: io.command,
    options: opts,
    machine,
    loadavgEnd: loadavg().map((l) => Math.round(l * 100) / 100),
    pinning,
    mosquitto,
    variants,
    reference,
  });
  say(`wrote ${[...written, rawFile].map((f) => relative(process.cwd(), f) || f).join(', ')}`);
  const problems = records.filter((r) => !r.ok);
  const failed = problems.filter((r) => !r.result || r.variant.startsWith('mqprobe'));
  const where = '(RESULTS.md, "Runs with problems")';
  if (!problems.length) say(`all ${records.length} runs delivered every message and connection`);
  else if (!failed.length)
    say(
      `mqprobe delivered everything; other brokers lost messages or connections in ${problems.length} of ${records.length} runs ${where}`,
    );
  else say(`${failed.length} of ${records.length} runs failed or lost messages through mqprobe ${where}`);
  return failed.length;
}
