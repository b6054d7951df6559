import type { BrokerApi } from '../../engine/api.js';
import { protocolVersionOf, queuedBytesOf, type ClientHandle } from '../../engine/client.js';
import type { ClientView } from './api-types.js';

interface ClientRow {
  handle: ClientHandle;
  id: string;
  user?: string;
  address?: string;
  listener: string;
  protocol?: number;
  since: number;
  msgsIn: number;
  msgsOut: number;
  /** Counts at the last tick, and the rates over it. */
  prevIn: number;
  prevOut: number;
  rateIn: number;
  rateOut: number;
  subscriptions: Set<string>;
}

export const CLIENT_SORTS = ['id', 'user', 'address', 'since', 'in', 'out', 'subscriptions'] as const;
export type ClientSort = (typeof CLIENT_SORTS)[number];

export interface ClientQuery {
  filter: string;
  sort: ClientSort;
  desc: boolean;
  offset: number;
  limit: number;
}

const KEY: Record<ClientSort, (r: ClientRow) => string | number> = {
  id: (r) => r.id,
  user: (r) => r.user ?? '',
  address: (r) => r.address ?? '',
  since: (r) => r.since,
  in: (r) => r.rateIn,
  out: (r) => r.rateOut,
  subscriptions: (r) => r.subscriptions.size,
};

/**
 * The connected clients, for /api/clients: kept from the broker's own events (connect, subscribe,
 * unsubscribe, disconnect) plus a counter per message in and out. Internal clients (`$…`) are left out.
 * A sorted order is kept for one tick, so that viewers paging the same view share one sort.
 */
export class ClientTable {
  private readonly rows = new Map<ClientHandle, ClientRow>();
  /** Changes on every connect and disconnect. */
  version = 0;
  private sorted = new Map<string, ClientRow[]>();

  constructor(broker: BrokerApi, stops: (() => void)[]) {
    stops.push(
      broker.on('client-ready', (c) => {
        if (c.id.startsWith('$')) return;
        const conn = broker.connOf(c);
        this.rows.set(c, {
          handle: c,
          id: c.id,
          user: broker.usernameOf(c),
          address: conn?.remoteAddress,
          listener: conn ? `${conn.transport} ${conn.listenerPort}` : '',
          protocol: protocolVersionOf(c),
          since: Date.now(),
          msgsIn: 0,
          msgsOut: 0,
          prevIn: 0,
          prevOut: 0,
          rateIn: 0,
          rateOut: 0,
          subscriptions: new Set(),
        });
        this.version++;
      }),
      broker.on('disconnect-reason', (c) => {
        if (this.rows.delete(c)) this.version++;
      }),
      broker.on('publish', (_p, c) => {
        if (c) {
          const row = this.rows.get(c);
          if (row) row.msgsIn++;
        }
      }),
      broker.on('delivered', (_p, c) => {
        const row = this.rows.get(c);
        if (row) row.msgsOut++;
      }),
      broker.on('subscribe', (subs, c) => {
        const row = this.rows.get(c);
        if (row) for (const s of subs) if (s.qos < 128) row.subscriptions.add(s.topic);
      }),
      broker.on('unsubscribe', (topics, c) => {
        const row = this.rows.get(c);
        if (row) for (const t of topics) row.subscriptions.delete(t);
      }),
    );
  }

  get size(): number {
    return this.rows.size;
  }

  tick(seconds: number): void {
    for (const r of this.rows.values()) {
      r.rateIn = (r.msgsIn - r.prevIn) / seconds;
      r.rateOut = (r.msgsOut - r.prevOut) / seconds;
      r.prevIn = r.msgsIn;
      r.prevOut = r.msgsOut;
    }
    this.sorted.clear();
  }

  /** A page of clients: filtered by a substring of id, user or address, sorted, sliced. */
  page(q: ClientQuery): { total: number; offset: number; clients: ClientView[] } {
    const cacheKey = `${q.sort}\u0000${q.desc}\u0000${q.filter}`;
    let rows = this.sorted.get(cacheKey);
    if (!rows || this.sortedVersion !== this.version) {
      if (this.sortedVersion !== this.version) this.sorted.clear();
      this.sortedVersion = this.version;
      const f = q.filter.toLowerCase();
      rows = [...this.rows.values()].filter(
        (r) => f === '' || r.id.toLowerCase().includes(f) || (r.user ?? '').toLowerCase().includes(f) || (r.address ?? '').includes(f),
      );
      const key = KEY[q.sort];
      const sign = q.desc ? -1 : 1;
      rows.sort((a, b) => {
        const ka = key(a);
        const kb = key(b);
        return sign * (ka < kb ? -1 : ka > kb ? 1 : 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
      });
      // a few views at once (viewers sorting differently); more would only hold memory
      if (this.sorted.size >= 8) this.sorted.clear();
      this.sorted.set(cacheKey, rows);
    }
    return { total: rows.length, offset: q.offset, clients: rows.slice(q.offset, q.offset + q.limit).map(view) };
  }

  private sortedVersion = -1;
}

function view(r: ClientRow): ClientView {
  return {
    id: r.id,
    user: r.user ?? null,
    address: r.address ?? null,
    listener: r.listener,
    protocol: r.protocol ?? null,
    since: new Date(r.since).toISOString(),
    in_per_s: r.rateIn,
    out_per_s: r.rateOut,
    subscriptions: r.subscriptions.size,
    queued_bytes: queuedBytesOf(r.handle),
  };
}
