/** Medians with min–max over rounds, and ratios to the reference broker computed round by round. */
import type { RunRecord } from './runner.js';
import type { Metric, ScenarioCase } from './scenarios.js';

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export interface Cell {
  kind?: 'flow' | 'connect';
  value?: Spread;
  /** value ÷ reference, per round where both ran, summarised. */
  ratio?: Spread;
  brokerCpu?: number;
  loadCpu?: number;
  /** % of the window the broker / the generator waited for their CPU (other processes on it). */
  brokerWait?: number;
  loadWait?: number;
  receiverCpu?: number;
  runs: number;
  /** Runs that ended without a result (the broker did not start, the generator failed). */
  failed: number;
  /** Runs with a result but with delivery problems (their figures still count: they only count what arrived). */
  flawed: number;
  /** Messages lost, of those sent (flow scenarios), or clients not connected (connect scenarios), over all rounds. */
  missing: number;
  expected: number;
  /** Problems over all rounds (distinct). */
  problems: string[];
  capture?: { received: number; dropped: number; unaccounted: number };
}

export function spread(values: number[]): Spread | undefined {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return undefined;
  const mid = v.length >> 1;
  return { median: v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2, min: v[0], max: v[v.length - 1], n: v.length };
}

const median = (values: (number | undefined)[]) => spread(values.filter((x): x is number => x !== undefined))?.median;

export function summarise(records: RunRecord[], sc: ScenarioCase, metric: Metric, variant: string, reference: string | undefined): Cell {
  const mine = records.filter((r) => r.case === sc.id && r.variant === variant);
  // a run with losses still counts: its throughput is what was delivered; the losses are reported beside it
  const okValue = (r: RunRecord | undefined) => (r?.result ? r.metrics[metric.key] : undefined);
  const values = mine.map(okValue).filter((x): x is number => x !== undefined);
  const ratios: number[] = [];
  if (reference && reference !== variant) {
    for (const r of mine) {
      const v = okValue(r);
      const ref = okValue(records.find((x) => x.case === sc.id && x.variant === reference && x.round === r.round));
      if (v !== undefined && ref) ratios.push(v / ref);
    }
  } else if (reference === variant && values.length) ratios.push(1);
  const cpu = mine.map((r) => r.result?.cpu);
  const captures = mine.flatMap((r) => (r.capture ? [r.capture] : []));
  return {
    kind: mine.find((r) => r.result)?.result?.kind,
    value: spread(values),
    ratio: spread(ratios),
    brokerCpu: median(cpu.map((c) => c?.broker)),
    loadCpu: median(cpu.map((c) => c?.generator)),
    brokerWait: median(cpu.map((c) => c?.brokerWait)),
    loadWait: median(cpu.map((c) => c?.generatorWait)),
    receiverCpu: median(cpu.map((c) => c?.receiver)),
    runs: mine.length,
    failed: mine.filter((r) => !r.result).length,
    flawed: mine.filter((r) => r.result && !r.ok).length,
    missing: mine.reduce(
      (n, r) => n + (r.result?.kind === 'flow' ? r.result.lost : r.result ? r.result.clients - r.result.connected : 0),
      0,
    ),
    expected: mine.reduce((n, r) => n + (r.result?.kind === 'flow' ? r.result.expected : r.result ? r.result.clients : 0), 0),
    problems: [...new Set(mine.flatMap((r) => r.problems))],
    capture: captures.length
      ? {
          received: captures.reduce((n, c) => n + c.lines, 0),
          dropped: captures.reduce((n, c) => n + c.dropped, 0),
          unaccounted: captures.reduce((n, c) => n + c.unaccounted, 0),
        }
      : undefined,
  };
}
