import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { call } from './api.js';
import type { Health, Live, Part, Tick } from './types.js';

const KIND: Record<Part['kind'], string> = { beat: 'beat', bridge: 'MQTT bridge', 'kafka-bridge': 'Kafka bridge' };

/** One hour at the API's 10 s samples, plus the live ticks in between. */
const WINDOW_S = 3600;

export function HealthView({ tick }: { tick?: Tick }) {
  const [health, setHealth] = useState<Health | undefined>();
  const [points, setPoints] = useState<Live[]>([]);
  useEffect(() => {
    call<Health>('/api/health').then((h) => (setHealth(h), setPoints(h.history)), () => undefined);
  }, []);
  const ticks = useRef(0);
  useEffect(() => {
    if (!tick) return;
    setPoints((p) => [...p, tick.live].filter((x) => x.t > tick.live.t - WINDOW_S * 1000));
    // $SYS figures change every sys_interval: fetched again every fifth tick (10 s), not pushed
    if (++ticks.current % 5 === 0) call<Health>('/api/health').then(setHealth, () => undefined);
  }, [tick]);
  const sinks = tick?.sinks ?? health?.sinks ?? [];
  const parts = [...(tick?.beats ?? health?.beats ?? []), ...(tick?.bridges ?? health?.bridges ?? [])];
  return (
    <section class="health">
      <div class="charts">
        <Chart title="Messages per second" points={points} series={[['in', (p) => p.in_per_s], ['out', (p) => p.out_per_s]]} />
        <Chart title="Connected clients" points={points} series={[['clients', (p) => p.clients]]} />
      </div>
      <h2>Capture sinks</h2>
      {sinks.length === 0 ? <p class="note">No capture sink configured.</p> : null}
      <table hidden={sinks.length === 0}>
        <thead>
          <tr><th>Sink</th><th>Queued</th><th>Spool bytes</th><th>Delivered</th><th>Dropped</th><th>Failures</th></tr>
        </thead>
        <tbody>
          {sinks.map((s) => (
            <tr key={s.name}>
              <td>{s.name}</td><td class="num">{s.queued}</td><td class="num">{s.spool_bytes}</td><td class="num">{s.delivered}</td>
              <td class="num">{s.dropped}</td><td class="num">{s.failures}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Beats and bridges</h2>
      {parts.length === 0 ? <p class="note">No beat or bridge configured.</p> : null}
      <table class="parts" hidden={parts.length === 0}>
        <thead>
          <tr><th>Name</th><th>Kind</th><th>State</th><th>Records/s</th><th>Records</th><th>Last error</th></tr>
        </thead>
        <tbody>
          {parts.map((p) => (
            <tr key={`${p.kind} ${p.name}`}>
              <td>{p.name}</td><td>{KIND[p.kind]}</td><td>{p.state}</td><td class="num">{p.records_per_s.toFixed(1)}</td>
              <td class="num">{p.records}</td>
              <td class={p.last_error ? 'last-error' : 'note'}>{p.last_error ? `${p.last_error} (${new Date(p.last_error_at ?? 0).toLocaleTimeString()})` : '–'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>$SYS</h2>
      <table class="sys">
        <tbody>
          {Object.entries(health?.sys ?? {}).map(([k, v]) => (
            <tr key={k}><td>{k.slice('$SYS/broker/'.length)}</td><td class="num">{v}</td></tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Chart({ title, points, series }: { title: string; points: Live[]; series: [string, (p: Live) => number][] }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const data = (): uPlot.AlignedData => [points.map((p) => p.t / 1000), ...series.map(([, f]) => points.map(f))];
  useEffect(() => {
    const width = Math.min(el.current!.clientWidth || 600, 900);
    plot.current = new uPlot(
      {
        width,
        height: 180,
        // always the last hour, however few points there are yet
        scales: { x: { time: true, range: () => [Date.now() / 1000 - WINDOW_S, Date.now() / 1000] } },
        series: [{}, ...series.map(([label], i) => ({ label, stroke: i === 0 ? '#2f7ed8' : '#e4572e', width: 1.5 }))],
        axes: [{ stroke: 'currentColor' }, { stroke: 'currentColor' }],
      },
      data(),
      el.current!,
    );
    return () => plot.current?.destroy();
  }, []);
  useEffect(() => plot.current?.setData(data()), [points]);
  return (
    <figure>
      <figcaption>{title}</figcaption>
      <div ref={el} role="img" aria-label={`${title}, last hour`} />
    </figure>
  );
}
