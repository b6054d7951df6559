/**
 * The join (docs/correlation.md): socket rows (osquery) and flows (Zeek) meet on their 5-tuple, in
 * either direction, within a time window; a flow waits `windowMs` (wall clock, from its arrival) for
 * a row that explains it, a row is kept `socketTtlMs` after it was last seen for flows that arrive
 * later (Zeek writes conn only when a connection ends). Everything is bounded: sockets per host and
 * in all, pending flows, hosts, application records; what is pushed out is counted.
 */
import { isHostAddress, isWildcard } from './address.js';
import type { AppRecord, Flow, ProcessInfo, SocketRow, SocketSource } from './inputs.js';

export interface CorrelatorLimits {
  /** Clock difference tolerated between Zeek's and osquery's timestamps. */
  skewMs: number;
  /** How long a flow waits for a row that explains it. */
  windowMs: number;
  /** How long a socket row is kept after it was last seen. */
  socketTtlMs: number;
  maxSockets: number;
  maxSocketsPerHost: number;
  maxPending: number;
}

export interface HostInfo {
  name: string;
  id?: string;
  addresses: string[];
}

export type Direction = 'outbound' | 'inbound' | 'internal';

export interface Attribution {
  flow: Flow;
  host: HostInfo;
  direction: 'outbound' | 'inbound';
  process: ProcessInfo;
  socket: { source: SocketSource; query: string; timeMs: number };
  apps: AppRecord[];
  /** Wall-clock ms the flow waited for its row (0: the row was there first). */
  waitedMs: number;
}

export interface Unattributed {
  flow: Flow;
  host: HostInfo;
  direction: Direction;
  reason: 'no-socket-row' | 'evicted';
  apps: AppRecord[];
}

export interface CorrelatorOutput {
  attributed(a: Attribution): void;
  unattributed(u: Unattributed): void;
}

export interface CorrelatorCounters {
  flows: number;
  attributed: number;
  unattributed: number;
  /** Flows that touched no known host: dropped when their window passed. */
  unrelated: number;
  duplicateFlows: number;
  sockets: number;
  socketsEvictedHost: number;
  socketsEvictedGlobal: number;
  socketsExpired: number;
  pendingEvicted: number;
  hostsEvicted: number;
}

interface SocketEntry extends SocketRow {
  id: string;
  key: string;
  /** Earliest and latest event time the row was seen at. */
  first: number;
  last: number;
  /** Wall clock of the last sighting (expiry). */
  seenAt: number;
}

interface Pending {
  flow: Flow;
  arrivedAt: number;
}

/** What survives a restart (see `snapshot`). */
export interface CorrelatorState {
  pending: Pending[];
  published: string[];
  hosts: { name: string; id?: string; addresses: string[] }[];
}

const PROTOCOLS: Record<string, number> = { tcp: 6, udp: 17 };
const MAX_HOSTS = 65_536;
const MAX_ADDRESSES_PER_HOST = 64;
const MAX_APP_RECORDS = 50_000;
const MAX_APPS_PER_FLOW = 8;

const tupleKey = (la: string, lp: number, ra: string, rp: number) => `${la}|${lp}|${ra}|${rp}`;
/** A bound or listening socket on one address, or (wildcard) on every address of a host. */
const boundKey = (addr: string, port: number) => `B|${addr}|${port}`;
const wildKey = (host: string, port: number) => `W|${host}|${port}`;

export class Correlator {
  readonly counters: CorrelatorCounters = {
    flows: 0,
    attributed: 0,
    unattributed: 0,
    unrelated: 0,
    duplicateFlows: 0,
    sockets: 0,
    socketsEvictedHost: 0,
    socketsEvictedGlobal: 0,
    socketsExpired: 0,
    pendingEvicted: 0,
    hostsEvicted: 0,
  };
  /** Every socket entry by id, least recently seen first. */
  private readonly sockets = new Map<string, SocketEntry>();
  private readonly perHost = new Map<string, Map<string, SocketEntry>>();
  private readonly index = new Map<string, SocketEntry[]>();
  /** Flows waiting for a row, oldest arrival first; and by the keys a row would explain them under. */
  private readonly pending = new Map<string, Pending>();
  private readonly pendingIndex = new Map<string, Set<string>>();
  /** Uids published (or reported), so a repeated record is not published twice. */
  private readonly published = new Map<string, true>();
  private readonly hosts = new Map<string, HostInfo>();
  private readonly hostByAddress = new Map<string, string>();
  private readonly apps = new Map<string, AppRecord[]>();

  constructor(
    private readonly limits: CorrelatorLimits,
    private readonly out: CorrelatorOutput,
  ) {}

  /** Grows whenever what `snapshot` returns changes: the beat checkpoints only then. */
  changes = 0;

  get trackedSockets(): number {
    return this.sockets.size;
  }

  get pendingFlows(): number {
    return this.pending.size;
  }

  get knownHosts(): number {
    return this.hosts.size;
  }

  /** The host an address belongs to, if any row or enrollment told. */
  hostOf(address: string): HostInfo | undefined {
    const name = this.hostByAddress.get(address);
    return name === undefined ? undefined : this.hosts.get(name);
  }

  host(name: string): HostInfo | undefined {
    return this.hosts.get(name);
  }

  /** Learns that `address` is one of `host`'s (interface_addresses, a socket's local address, enrollment). */
  addHostAddress(name: string, address: string, id?: string): void {
    if (!isHostAddress(address)) return;
    let h = this.hosts.get(name);
    if (h) {
      this.hosts.delete(name); // most recently heard of last
    } else {
      h = { name, addresses: [] };
      if (this.hosts.size >= MAX_HOSTS) this.evictHost();
    }
    this.hosts.set(name, h);
    this.changes++;
    if (id !== undefined) h.id = id;
    const owner = this.hostByAddress.get(address);
    if (owner === name) return;
    // an address moves to the host that reported it last (DHCP)
    if (owner !== undefined) {
      const prev = this.hosts.get(owner);
      if (prev) prev.addresses = prev.addresses.filter((a) => a !== address);
    }
    if (h.addresses.length >= MAX_ADDRESSES_PER_HOST) this.hostByAddress.delete(h.addresses.shift()!);
    h.addresses.push(address);
    this.hostByAddress.set(address, name);
  }

  /** A dns/ssl/http record: kept by uid until its conn record comes (or pushed out). */
  addApp(app: AppRecord): void {
    const list = this.apps.get(app.uid);
    if (list) {
      if (list.length < MAX_APPS_PER_FLOW) list.push(app);
      return;
    }
    if (this.apps.size >= MAX_APP_RECORDS) this.apps.delete(this.apps.keys().next().value!);
    this.apps.set(app.uid, [app]);
  }

  addFlow(flow: Flow, now: number): void {
    if (this.published.has(flow.uid) || this.pending.has(flow.uid)) {
      this.counters.duplicateFlows++;
      return;
    }
    this.counters.flows++;
    if (!this.tryAttribute(flow, now, now)) this.enqueue(flow, now);
  }

  private enqueue(flow: Flow, arrivedAt: number): void {
    if (this.pending.size >= this.limits.maxPending) {
      this.counters.pendingEvicted++;
      this.finish(this.pending.keys().next().value!, 'evicted');
    }
    this.pending.set(flow.uid, { flow, arrivedAt });
    this.changes++;
    for (const k of this.flowKeys(flow)) {
      let set = this.pendingIndex.get(k);
      if (!set) this.pendingIndex.set(k, (set = new Set()));
      set.add(flow.uid);
    }
  }

  addSocket(row: SocketRow, now: number): void {
    this.counters.sockets++;
    if (isHostAddress(row.local)) this.addHostAddress(row.host, row.local, row.hostId);
    else if (row.hostId !== undefined && this.hosts.has(row.host)) this.hosts.get(row.host)!.id = row.hostId;
    const key =
      row.remote !== undefined
        ? tupleKey(row.local, row.localPort, row.remote, row.remotePort!)
        : isWildcard(row.local)
          ? wildKey(row.host, row.localPort)
          : boundKey(row.local, row.localPort);
    const id = `${row.host}|${key}|${row.process.pid}|${row.protocol ?? ''}`;
    const seen = this.sockets.get(id);
    if (seen) {
      // the same socket again (a snapshot repeats it, a duplicate row): one entry, its times widened
      seen.first = Math.min(seen.first, row.timeMs);
      seen.last = Math.max(seen.last, row.timeMs);
      seen.seenAt = now;
      if (row.process.executable || row.process.commandLine || row.process.name) seen.process = mergeProcess(seen.process, row.process);
      this.touch(seen);
    } else {
      const entry: SocketEntry = { ...row, id, key, first: row.timeMs, last: row.timeMs, seenAt: now };
      let mine = this.perHost.get(row.host);
      if (!mine) this.perHost.set(row.host, (mine = new Map()));
      if (mine.size >= this.limits.maxSocketsPerHost) {
        this.counters.socketsEvictedHost++;
        this.dropSocket(mine.values().next().value!);
      } else if (this.sockets.size >= this.limits.maxSockets) {
        this.counters.socketsEvictedGlobal++;
        this.dropSocket(this.sockets.values().next().value!);
      }
      this.sockets.set(id, entry);
      mine.set(id, entry);
      const list = this.index.get(key);
      if (list) list.push(entry);
      else this.index.set(key, [entry]);
    }
    this.explainPending(row, now);
  }

  /** Ends the windows that passed: unexplained flows of known hosts are reported; old rows forgotten. */
  expire(now: number): void {
    for (const [uid, p] of this.pending) {
      if (p.arrivedAt + this.limits.windowMs > now) break;
      this.finish(uid, 'no-socket-row');
    }
    for (const s of this.sockets.values()) {
      if (s.seenAt + this.limits.socketTtlMs > now) break;
      this.counters.socketsExpired++;
      this.dropSocket(s);
    }
  }

  /**
   * Pending flows of known hosts, recently published uids and known hosts, to carry over a restart. The
   * pending flows of no known host (most of a sensor's traffic, dropped when their window passes) are
   * left out: the checkpoint stays small, and all they can lose is a host that becomes known meanwhile.
   */
  snapshot(): CorrelatorState {
    return {
      pending: [...this.pending.values()].filter((p) => this.hostByAddress.has(p.flow.orig) || this.hostByAddress.has(p.flow.resp)),
      published: [...this.published.keys()],
      hosts: [...this.hosts.values()].map((h) => ({ ...h, addresses: [...h.addresses] })),
    };
  }

  /** Takes back a snapshot; pending flows keep their arrival time (their window goes on). */
  restore(state: CorrelatorState, now: number): void {
    for (const h of state.hosts) for (const a of h.addresses) this.addHostAddress(h.name, a, h.id);
    for (const uid of state.published) this.remember(uid);
    for (const p of state.pending) if (!this.published.has(p.flow.uid)) this.enqueue(p.flow, Math.min(p.arrivedAt, now));
  }

  private tryAttribute(flow: Flow, now: number, arrivedAt: number): boolean {
    const best = this.bestSocket(flow);
    if (!best) return false;
    const { entry, direction } = best;
    const host = this.hosts.get(entry.host) ?? { name: entry.host, id: entry.hostId, addresses: [] };
    this.remember(flow.uid);
    this.counters.attributed++;
    this.out.attributed({
      flow,
      host,
      direction,
      process: entry.process,
      socket: { source: entry.source, query: entry.query, timeMs: direction === 'outbound' ? entry.first : entry.last },
      apps: this.takeApps(flow.uid),
      waitedMs: Math.max(0, now - arrivedAt),
    });
    return true;
  }

  /** The socket that explains a flow best: connected before bound, then the nearest in time. */
  private bestSocket(flow: Flow): { entry: SocketEntry; direction: 'outbound' | 'inbound' } | undefined {
    const proto = PROTOCOLS[flow.proto];
    const { skewMs } = this.limits;
    let best: { entry: SocketEntry; direction: 'outbound' | 'inbound'; score: number } | undefined;
    const consider = (key: string, direction: 'outbound' | 'inbound', connected: boolean) => {
      for (const e of this.index.get(key) ?? []) {
        if (e.protocol !== undefined && proto !== undefined && e.protocol !== proto) continue;
        let score: number;
        if (connected) {
          if (e.first - skewMs > flow.endMs || e.last + skewMs < flow.startMs) continue;
          score = Math.max(0, e.first - flow.endMs, flow.startMs - e.last);
        } else {
          score = Number.MAX_SAFE_INTEGER; // a bound socket explains any flow to its port, less surely
        }
        if (!best || score < best.score) best = { entry: e, direction, score };
      }
    };
    consider(tupleKey(flow.orig, flow.origPort, flow.resp, flow.respPort), 'outbound', true);
    consider(tupleKey(flow.resp, flow.respPort, flow.orig, flow.origPort), 'inbound', true);
    if (best) return best;
    consider(boundKey(flow.resp, flow.respPort), 'inbound', false);
    const respHost = this.hostByAddress.get(flow.resp);
    if (respHost !== undefined) consider(wildKey(respHost, flow.respPort), 'inbound', false);
    // a UDP client's socket is bound, not connected, on the originator's side
    if (flow.proto === 'udp') {
      consider(boundKey(flow.orig, flow.origPort), 'outbound', false);
      const origHost = this.hostByAddress.get(flow.orig);
      if (origHost !== undefined) consider(wildKey(origHost, flow.origPort), 'outbound', false);
    }
    return best;
  }

  /** The keys under which a later row could explain a pending flow. */
  private flowKeys(flow: Flow): string[] {
    const keys = [
      tupleKey(flow.orig, flow.origPort, flow.resp, flow.respPort),
      tupleKey(flow.resp, flow.respPort, flow.orig, flow.origPort),
      `P|${flow.resp}|${flow.respPort}`,
    ];
    if (flow.proto === 'udp') keys.push(`P|${flow.orig}|${flow.origPort}`);
    return keys;
  }

  private explainPending(row: SocketRow, now: number): void {
    if (this.pending.size === 0) return;
    let keys: string[];
    if (row.remote !== undefined) keys = [tupleKey(row.local, row.localPort, row.remote, row.remotePort!)];
    else if (!isWildcard(row.local)) keys = [`P|${row.local}|${row.localPort}`];
    else keys = (this.hosts.get(row.host)?.addresses ?? []).map((a) => `P|${a}|${row.localPort}`);
    for (const k of keys) {
      const uids = this.pendingIndex.get(k);
      if (!uids) continue;
      for (const uid of [...uids]) {
        const p = this.pending.get(uid);
        if (p && this.tryAttribute(p.flow, now, p.arrivedAt)) this.unpend(uid);
      }
    }
  }

  /** A pending flow's window ended (or it was pushed out): reported when it touches a known host. */
  private finish(uid: string, reason: Unattributed['reason']): void {
    const p = this.pending.get(uid)!;
    this.unpend(uid);
    const { flow } = p;
    const orig = this.hostOf(flow.orig);
    const resp = this.hostOf(flow.resp);
    const host = orig ?? resp;
    if (!host) {
      this.counters.unrelated++;
      this.apps.delete(uid);
      return;
    }
    this.remember(uid);
    this.counters.unattributed++;
    const direction: Direction = orig && resp ? 'internal' : orig ? 'outbound' : 'inbound';
    this.out.unattributed({ flow, host, direction, reason, apps: this.takeApps(uid) });
  }

  private unpend(uid: string): void {
    const p = this.pending.get(uid);
    if (!p) return;
    this.pending.delete(uid);
    this.changes++;
    for (const k of this.flowKeys(p.flow)) {
      const set = this.pendingIndex.get(k);
      if (!set) continue;
      set.delete(uid);
      if (set.size === 0) this.pendingIndex.delete(k);
    }
  }

  private remember(uid: string): void {
    // as many uids as flows can be pending, twice over: a repeat comes soon after the original
    if (this.published.size >= this.limits.maxPending * 2) this.published.delete(this.published.keys().next().value!);
    this.published.set(uid, true);
    this.changes++;
  }

  private takeApps(uid: string): AppRecord[] {
    const list = this.apps.get(uid) ?? [];
    this.apps.delete(uid);
    return list;
  }

  private touch(e: SocketEntry): void {
    this.sockets.delete(e.id);
    this.sockets.set(e.id, e);
    const mine = this.perHost.get(e.host)!;
    mine.delete(e.id);
    mine.set(e.id, e);
  }

  private dropSocket(e: SocketEntry): void {
    this.sockets.delete(e.id);
    const mine = this.perHost.get(e.host);
    mine?.delete(e.id);
    if (mine?.size === 0) this.perHost.delete(e.host);
    const list = this.index.get(e.key);
    if (!list) return;
    const rest = list.filter((x) => x !== e);
    if (rest.length === 0) this.index.delete(e.key);
    else this.index.set(e.key, rest);
  }

  private evictHost(): void {
    const [name, h] = this.hosts.entries().next().value!;
    this.hosts.delete(name);
    for (const a of h.addresses) if (this.hostByAddress.get(a) === name) this.hostByAddress.delete(a);
    this.counters.hostsEvicted++;
  }
}

/** A later row of the same socket may know more of its process (a snapshot joined with processes). */
function mergeProcess(a: ProcessInfo, b: ProcessInfo): ProcessInfo {
  return {
    pid: b.pid,
    name: b.name ?? a.name,
    executable: b.executable ?? a.executable,
    commandLine: b.commandLine ?? a.commandLine,
    userId: b.userId ?? a.userId,
    userName: b.userName ?? a.userName,
  };
}
