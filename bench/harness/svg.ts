/**
 * One SVG chart per scenario: a panel per case and metric, a horizontal bar per broker at the
 * median with a whisker from min to max, the value and the ratio to the reference written beside it.
 * Each panel has its own scale (p50 and p99.9 latencies differ by orders of magnitude).
 */
import { num, ratio } from './format.js';
import type { CaseMetric } from './tables.js';

const WIDTH = 900;
const LABEL_W = 170;
const VALUE_W = 250;
const BAR_H = 18;
const ROW_H = 26;
const PANEL_HEAD = 40;
const COLORS: Record<string, string> = {
  mosquitto: '#3b6ea5',
  mqprobe: '#e07b39',
  'mqprobe-capture': '#b8412c',
  'mqprobe-detect': '#d9a441',
  aedes: '#5f9a52',
};

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

interface Reference {
  id: string;
  label: string;
}

function panel(cm: CaseMetric, y0: number, reference: Reference | undefined, withTitle: boolean): string {
  const plotW = WIDTH - LABEL_W - VALUE_W - 20;
  const top = Math.max(...cm.cells.map(({ cell }) => cell.value?.max ?? 0)) || 1;
  const x = (v: number) => LABEL_W + (v / top) * plotW;
  const out = [
    withTitle ? `<text x="10" y="${y0 + 18}" class="h">${esc(`${cm.sc.id} · ${cm.sc.title}`)}</text>` : '',
    `<text x="10" y="${y0 + 33}" class="s">${esc(`${cm.metric.label}${cm.metric.label.includes(cm.metric.unit) ? '' : ` (${cm.metric.unit})`}, ${cm.metric.better} is better — bar: median, whisker: min–max`)}</text>`,
  ];
  cm.cells.forEach(({ variant, cell }, i) => {
    const y = y0 + PANEL_HEAD + i * ROW_H;
    const mid = y + BAR_H / 2;
    out.push(`<text x="${LABEL_W - 8}" y="${mid + 4}" class="l" text-anchor="end">${esc(variant.label)}</text>`);
    const v = cell.value;
    if (!v) {
      out.push(`<text x="${LABEL_W + 4}" y="${mid + 4}" class="s">${cell.runs ? 'no valid run' : 'not run'}</text>`);
      return;
    }
    out.push(
      `<rect x="${LABEL_W}" y="${y}" width="${Math.max(1, x(v.median) - LABEL_W).toFixed(1)}" height="${BAR_H}" fill="${COLORS[variant.id] ?? '#888'}"/>`,
    );
    if (v.n > 1) {
      out.push(
        `<path d="M${x(v.min).toFixed(1)} ${mid}H${x(v.max).toFixed(1)}M${x(v.min).toFixed(1)} ${y + 4}V${y + BAR_H - 4}M${x(v.max).toFixed(1)} ${y + 4}V${y + BAR_H - 4}" stroke="#222" stroke-width="1.2" fill="none"/>`,
      );
    }
    const r =
      reference && reference.id !== variant.id && cell.ratio ? ` (${ratio(cell.ratio.median)} ${reference.label.split(' ')[0]})` : '';
    out.push(`<text x="${LABEL_W + plotW + 8}" y="${mid + 4}" class="v">${esc(`${num(v.median)} ${cm.metric.unit}${r}`)}</text>`);
  });
  return out.join('\n');
}

export function panelHeight(cm: CaseMetric): number {
  return PANEL_HEAD + cm.cells.length * ROW_H + 14;
}

/** `reference`: the broker the ratios are to (computed round by round, so not always the ratio of the medians). */
export function chart(title: string, panels: CaseMetric[], reference: Reference | undefined, footer: string): string {
  let y = 34;
  const body: string[] = [];
  panels.forEach((p, i) => {
    // metrics of one case share its title
    body.push(panel(p, y, reference, i === 0 || panels[i - 1].sc !== p.sc));
    y += panelHeight(p);
  });
  const height = y + 24;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    '<style>.t{font-size:16px;font-weight:bold}.h{font-size:13px;font-weight:bold}.s{font-size:11px;fill:#555}.l{font-size:12px}.v{font-size:12px}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="10" y="22" class="t">${esc(title)}</text>`,
    ...body,
    `<text x="10" y="${height - 10}" class="s">${esc(footer)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
