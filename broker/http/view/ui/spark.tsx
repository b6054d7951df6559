/** A sparkline as SVG (no canvas, no inline style: fine under the page's CSP). */
export function Spark({ values }: { values: number[] }) {
  const w = 90;
  const h = 20;
  const max = Math.max(...values, 1e-9);
  const pts = values.map((v, i) => `${((i / Math.max(values.length - 1, 1)) * w).toFixed(1)},${(h - (v / max) * (h - 2) - 1).toFixed(1)}`).join(' ');
  return (
    <svg class="spark" width={w} height={h} viewBox={`0 0 ${w} ${h}`} role="img" aria-label={`rate, peak ${max.toFixed(1)}/s`}>
      <polyline points={pts} fill="none" stroke="currentColor" stroke-width="1.5" />
    </svg>
  );
}
