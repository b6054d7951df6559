/** Result tables, one per scenario case and metric, rendered for the terminal and for Markdown. */
import type { BrokerVariant } from './brokers.js';
import { cpuText, notes, ratio, spreadText } from './format.js';
import type { RunRecord } from './runner.js';
import type { Metric, ScenarioCase } from './scenarios.js';
import { summarise, type Cell } from './summary.js';

export interface Table {
  title: string;
  header: string[];
  rows: string[][];
}

export interface CaseMetric {
  sc: ScenarioCase;
  metric: Metric;
  cells: { variant: BrokerVariant; cell: Cell }[];
}

/** Variants that take part in a case (bare Aedes has no password file, the Node floor only holds sockets). */
export function variantsFor(sc: ScenarioCase, variants: BrokerVariant[]): BrokerVariant[] {
  return variants.filter((v) => (!sc.auth || v.auth) && (!v.only || v.only(sc.id, sc.scenario)));
}

export function caseMetrics(
  records: RunRecord[],
  sc: ScenarioCase,
  variants: BrokerVariant[],
  reference: string | undefined,
): CaseMetric[] {
  return sc.metrics.map((metric) => ({
    sc,
    metric,
    cells: variantsFor(sc, variants).map((variant) => ({ variant, cell: summarise(records, sc, metric, variant.id, reference) })),
  }));
}

export function table(cm: CaseMetric, referenceLabel: string | undefined): Table {
  const m = cm.metric;
  return {
    title: `${cm.sc.id} · ${cm.sc.title} — ${m.label} (${m.better} is better)`,
    header: [
      'broker',
      `${m.unit}, median (min–max)`,
      ...(referenceLabel ? [`÷ ${referenceLabel}, median (min–max)`] : []),
      'broker CPU',
      'load CPU',
      'notes',
    ],
    rows: cm.cells.map(({ variant, cell }) => [
      variant.label,
      spreadText(cell.value),
      ...(referenceLabel ? [spreadText(cell.ratio, ratio)] : []),
      cpuText(cell.brokerCpu, cell.brokerWait),
      cpuText(cell.loadCpu, cell.loadWait),
      notes(cell, cm.sc.saturating),
    ]),
  };
}

export function renderText(t: Table): string {
  const all = [t.header, ...t.rows];
  const widths = t.header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]) => `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')}`.trimEnd();
  return [t.title, line(t.header), ...t.rows.map(line)].join('\n');
}

export function renderMarkdown(t: Table): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|');
  return [
    `| ${t.header.map(esc).join(' | ')} |`,
    `|${t.header.map(() => ' --- ').join('|')}|`,
    ...t.rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}
