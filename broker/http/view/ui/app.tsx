import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import { ApiError, call, openStream } from './api.js';
import { AlertsView } from './alerts.js';
import { ClientsView } from './clients.js';
import { HealthView } from './health.js';
import { TopicsView } from './topics.js';
import type { Alert, Tick } from './types.js';
import './style.css';

const TABS = ['Clients', 'Topics', 'Alerts', 'Health'] as const;
type TabName = (typeof TABS)[number];
/** Alerts the page keeps (the API keeps more: /api/alerts). */
const KEPT_ALERTS = 500;

function App() {
  const [tab, setTab] = useState<TabName>(() => (TABS as readonly string[]).includes(location.hash.slice(1)) ? (location.hash.slice(1) as TabName) : 'Clients');
  const [tick, setTick] = useState<Tick | undefined>();
  const [alerts, setAlerts] = useState<Alert[]>([]);
  const [who, setWho] = useState<string | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [dark, setDark] = useState(() => localStorage.getItem('theme') === 'dark' || (localStorage.getItem('theme') === null && matchMedia('(prefers-color-scheme: dark)').matches));

  useEffect(() => {
    document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  }, [dark]);
  useEffect(() => {
    call<{ user: string | null }>('/api/whoami').then(
      (w) => setWho(w.user ?? 'anonymous'),
      (e: ApiError) => setError(e.message),
    );
    call<{ alerts: Alert[] }>('/api/alerts?limit=500').then((a) => setAlerts(a.alerts.reverse()), () => undefined);
    const es = openStream();
    es.addEventListener('tick', (e) => {
      const t = JSON.parse((e as MessageEvent<string>).data) as Tick;
      setTick(t);
      if (t.alerts.length > 0) setAlerts((old) => [...t.alerts.slice().reverse(), ...old].slice(0, KEPT_ALERTS));
      setError(undefined);
    });
    es.onerror = () => setError('live updates interrupted: reconnecting…');
    return () => es.close();
  }, []);
  const choose = (t: TabName) => {
    setTab(t);
    history.replaceState(null, '', `#${t}`);
  };

  return (
    <>
      <header>
        <h1>mqprobe</h1>
        <nav role="tablist" aria-label="Views">
          {TABS.map((t) => (
            <button role="tab" aria-selected={tab === t} class={tab === t ? 'active' : ''} onClick={() => choose(t)} key={t} id={`tab-${t}`}>
              {t}
              {t === 'Alerts' && alerts.length > 0 ? <span class="badge">{alerts.length}</span> : null}
            </button>
          ))}
        </nav>
        <span class="status" aria-live="polite">
          {tick ? `${tick.clients.connected} clients · ${fmt(tick.live.in_per_s)} msg/s in · ${fmt(tick.live.out_per_s)} out` : 'connecting…'}
        </span>
        <span class="who">{who ?? ''}</span>
        <button class="theme" aria-label="Switch light or dark" onClick={() => setDark((d) => (localStorage.setItem('theme', d ? 'light' : 'dark'), !d))}>
          {dark ? '☀' : '☾'}
        </button>
      </header>
      {error ? <p class="error" role="alert">{error}</p> : null}
      <main><div role="tabpanel" aria-labelledby={`tab-${tab}`}>
        {tab === 'Clients' ? <ClientsView tick={tick} /> : null}
        {tab === 'Topics' ? <TopicsView tick={tick} /> : null}
        {tab === 'Alerts' ? <AlertsView alerts={alerts} /> : null}
        {tab === 'Health' ? <HealthView tick={tick} /> : null}
      </div></main>
    </>
  );
}

export function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en') : n.toFixed(n === 0 ? 0 : 1);
}

render(<App />, document.getElementById('app')!);
