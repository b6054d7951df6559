/** Number formatting shared by the stdout table, RESULTS.md and the charts. */
import type { Cell, Spread } from './summary.js';

export function num(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '–';
  const a = Math.abs(x);
  if (a >= 100) return Math.round(x).toLocaleString('en-US');
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

export function ratio(x: number): string {
  return `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}×`;
}

/** `median (min–max)`, or just the value for one round. */
export function spreadText(s: Spread | undefined, f: (x: number) => string = num): string {
  if (!s) return '–';
  return s.n > 1 ? `${f(s.median)} (${f(s.min)}–${f(s.max)})` : f(s.median);
}

export const pct = (x: number | undefined) => (x === undefined ? '–' : `${Math.round(x)}%`);

/** Below this, time spent waiting for the CPU is not worth a mention. */
const WAIT_NOTED = 5;

/** CPU % with the time spent waiting for the CPU beside it when it matters: `62% (+30% wait)`. */
export const cpuText = (cpu: number | undefined, wait: number | undefined) =>
  `${pct(cpu)}${wait !== undefined && wait >= WAIT_NOTED ? ` (+${pct(wait)} wait)` : ''}`;

/** Below this broker CPU % a saturating scenario did not find the broker's limit. */
export const SATURATED_CPU = 80;

/** Delivery problems, failed runs, an unsaturated broker and what capture delivered, in a few words. */
export function notes(c: Cell, saturating: boolean): string {
  const parts: string[] = [];
  const busy = (c.brokerCpu ?? 0) + (c.brokerWait ?? 0);
  if (saturating && c.brokerCpu !== undefined && busy < SATURATED_CPU)
    parts.push(
      `broker not saturated (${pct(c.brokerCpu)} CPU${c.loadCpu !== undefined && c.loadCpu + (c.loadWait ?? 0) >= SATURATED_CPU ? ', the load generator was' : ''}): a lower bound for this broker`,
    );
  if (c.missing)
    parts.push(
      `⚠ ${c.missing.toLocaleString('en-US')} of ${c.expected.toLocaleString('en-US')} ${c.kind === 'flow' ? 'messages lost' : 'clients not connected'} (${((c.missing / c.expected) * 100).toPrecision(2)}%) in ${c.flawed} of ${c.runs} runs`,
    );
  else if (c.flawed) parts.push(`⚠ ${c.flawed} of ${c.runs} runs: ${c.problems.slice(0, 2).join('; ')}`);
  if (c.failed) parts.push(`${c.failed} of ${c.runs} runs failed: ${c.problems.slice(0, 2).join('; ').split('\n')[0]}`);
  if (c.capture)
    parts.push(
      `capture: ${c.capture.received.toLocaleString('en-US')} events received, ${c.capture.dropped.toLocaleString('en-US')} dropped (counted), ${c.capture.unaccounted.toLocaleString('en-US')} unaccounted`,
    );
  if (c.receiverCpu !== undefined) parts.push(`receiver CPU ${pct(c.receiverCpu)}`);
  return parts.join('; ');
}
