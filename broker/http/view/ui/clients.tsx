import { useEffect, useState } from 'preact/hooks';
import { call, qs } from './api.js';
import type { Client, ClientEvent, Tick } from './types.js';

const PAGE = 50;
const COLUMNS: [key: string, label: string][] = [
  ['id', 'Client id'],
  ['user', 'User'],
  ['address', 'Address'],
  ['', 'Listener'],
  ['', 'MQTT'],
  ['since', 'Connected since'],
  ['in', 'In/s'],
  ['out', 'Out/s'],
  ['subscriptions', 'Subs'],
  ['', 'Queued'],
];

export function ClientsView({ tick }: { tick?: Tick }) {
  const [filter, setFilter] = useState('');
  const [sort, setSort] = useState({ key: 'since', desc: true });
  const [offset, setOffset] = useState(0);
  const [page, setPage] = useState<{ total: number; clients: Client[] }>({ total: 0, clients: [] });
  const [open, setOpen] = useState<string | undefined>();
  // refetched on each tick (rates move), on the first one and when the view changes
  useEffect(() => {
    call<{ total: number; clients: Client[] }>(
      `/api/clients${qs({ filter, sort: sort.key, order: sort.desc ? 'desc' : 'asc', offset, limit: PAGE })}`,
    ).then(setPage, () => undefined);
  }, [filter, sort, offset, tick]);

  return (
    <section>
      <div class="toolbar">
        <label>
          Filter <input type="search" value={filter} placeholder="client id, user or address" onInput={(e) => (setFilter(e.currentTarget.value), setOffset(0))} />
        </label>
        <span>
          {page.total} clients{page.total > PAGE ? `, ${offset + 1}–${Math.min(offset + PAGE, page.total)}` : ''}
        </span>
        <button disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
          ‹ Previous
        </button>
        <button disabled={offset + PAGE >= page.total} onClick={() => setOffset(offset + PAGE)}>
          Next ›
        </button>
      </div>
      <table class="clients">
        <thead>
          <tr>
            {COLUMNS.map(([key, label]) => (
              <th key={label} aria-sort={sort.key === key && key !== '' ? (sort.desc ? 'descending' : 'ascending') : undefined}>
                {key === '' ? (
                  label
                ) : (
                  <button class="sort" onClick={() => setSort({ key, desc: sort.key === key ? !sort.desc : key === 'in' || key === 'out' })}>
                    {label}
                    {sort.key === key ? (sort.desc ? ' ▾' : ' ▴') : ''}
                  </button>
                )}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {page.clients.map((c) => (
            <tr
              key={c.id}
              tabIndex={0}
              class={open === c.id ? 'open' : ''}
              onClick={() => setOpen(open === c.id ? undefined : c.id)}
              onKeyDown={(e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), setOpen(open === c.id ? undefined : c.id))}
            >
              <td class="id">{c.id}</td>
              <td>{c.user ?? '—'}</td>
              <td>{c.address ?? '—'}</td>
              <td>{c.listener}</td>
              <td>{c.protocol === 5 ? '5.0' : c.protocol === 4 ? '3.1.1' : c.protocol === 3 ? '3.1' : '—'}</td>
              <td>{new Date(c.since).toLocaleTimeString()}</td>
              <td class="num">{c.in_per_s.toFixed(1)}</td>
              <td class="num">{c.out_per_s.toFixed(1)}</td>
              <td class="num">{c.subscriptions}</td>
              <td class="num">{c.queued_bytes}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {open !== undefined ? <ClientEvents id={open} onClose={() => setOpen(undefined)} /> : null}
    </section>
  );
}

function ClientEvents({ id, onClose }: { id: string; onClose(): void }) {
  const [events, setEvents] = useState<ClientEvent[] | undefined>();
  useEffect(() => {
    call<{ events: ClientEvent[] }>(`/api/events?client_id=${encodeURIComponent(id)}`).then((r) => setEvents(r.events.reverse()), () => setEvents([]));
  }, [id]);
  return (
    <aside class="events" aria-label={`Recent events of ${id}`}>
      <h2>
        Recent events of <span class="id">{id}</span>
        <button onClick={onClose} aria-label="Close">
          ✕
        </button>
      </h2>
      {events === undefined ? (
        <p>loading…</p>
      ) : events.length === 0 ? (
        <p>No events kept for this client.</p>
      ) : (
        <ol>
          {events.map((e, i) => (
            <li key={i}>
              <time>{new Date(e.time).toLocaleTimeString()}</time> <b>{e.action}</b> {e.detail}
            </li>
          ))}
        </ol>
      )}
    </aside>
  );
}
