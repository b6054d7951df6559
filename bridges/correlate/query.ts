/**
 * On-demand host queries: an alert (or a Zeek notice) names an address of a host that is enrolled
 * with the osquery beat, so the correlator asks that host, through the osquery beat's distributed
 * queries, which processes hold sockets to the other address the alert names. The SQL carries a
 * random tag; the osquery beat's `query/accepted` record echoes the SQL with the query id, and the
 * `distributed/<id>` record brings the rows back, which go out with the alert's id.
 */
import { randomBytes } from 'node:crypto';
import { isJsonObject } from '../shared/json-object.js';
import { normalAddress } from './address.js';

type Rec = Record<string, unknown>;

/** What triggered a query: the alert's `event.id` (or the notice's uid) and rule. */
export interface QueryReason {
  alertId: string;
  rule: string;
}

interface Asked extends QueryReason {
  host: string;
  peer?: string;
  sql: string;
  at: number;
}

/** Tags and query ids remembered at most (answers come within the osquery beat's query TTL or never). */
const MAX_OUTSTANDING = 1000;
const TAG = /\/\* mqprobe-correlate ([0-9a-f]{32}) \*\//;

/** The osquery SQL: sockets joined with their processes, to one peer address when the alert names one. */
export function socketQuery(tag: string, peer: string | undefined): string {
  // peer is a normalised address (digits, hex, '.', ':'): nothing to escape. A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d
  const where =
    peer === undefined
      ? "s.remote_port != 0 AND s.remote_address NOT IN ('', '0.0.0.0', '::')"
      : peer.includes(':')
        ? `s.remote_address = '${peer}'`
        : `s.remote_address IN ('${peer}', '::ffff:${peer}')`;
  return (
    `/* mqprobe-correlate ${tag} */ SELECT s.pid, p.name, p.path, p.cmdline, p.uid, s.family, s.protocol, ` +
    `s.local_address, s.local_port, s.remote_address, s.remote_port ` +
    `FROM process_open_sockets s LEFT JOIN processes p USING (pid) WHERE ${where};`
  );
}

/**
 * The addresses an alert names, normalised: `threat.indicator.ip` first (the peer worth asking about
 * when the alert is an intel hit on, say, a DNS answer), then `source.ip`, `destination.ip`.
 */
export function alertAddresses(alert: Rec): string[] {
  const get = (o: unknown, ...path: string[]) => path.reduce<unknown>((v, k) => (isJsonObject(v) ? v[k] : undefined), o);
  const out: string[] = [];
  for (const v of [get(alert, 'threat', 'indicator', 'ip'), get(alert, 'source', 'ip'), get(alert, 'destination', 'ip')]) {
    const a = normalAddress(v);
    if (a !== undefined && !out.includes(a)) out.push(a);
  }
  return out;
}

export type AskOutcome = 'sent' | 'rate-limited';

export class HostQueries {
  private readonly lastAsked = new Map<string, number>();
  private readonly byTag = new Map<string, Asked>();
  private readonly byId = new Map<string, Asked>();

  constructor(
    private readonly intervalMs: number,
    private readonly send: (command: { sql: string; hosts: string[] }) => void,
  ) {}

  /** Asks `host` (rate-limited per host) about its sockets to `peer`. */
  ask(host: string, peer: string | undefined, reason: QueryReason, now: number): AskOutcome {
    const last = this.lastAsked.get(host);
    if (last !== undefined && now - last < this.intervalMs) return 'rate-limited';
    this.lastAsked.delete(host);
    this.lastAsked.set(host, now);
    if (this.lastAsked.size > MAX_OUTSTANDING * 10) this.lastAsked.delete(this.lastAsked.keys().next().value!);
    const tag = randomBytes(16).toString('hex');
    const asked: Asked = { ...reason, host, peer, sql: socketQuery(tag, peer), at: now };
    remember(this.byTag, tag, asked);
    this.send({ sql: asked.sql, hosts: [host] });
    return 'sent';
  }

  /** The osquery beat's `query/accepted` record: ties its query id to our tag. */
  accepted(data: Rec): void {
    const m = typeof data.sql === 'string' ? TAG.exec(data.sql) : null;
    const asked = m ? this.byTag.get(m[1]) : undefined;
    if (!asked || typeof data.id !== 'string') return;
    this.byTag.delete(m![1]);
    remember(this.byId, data.id, asked);
  }

  /** A `distributed/<id>` record: the answer to one of our queries, or undefined. */
  answered(data: Rec): (Asked & { queryId: string }) | undefined {
    const id = data.queryId;
    if (typeof id !== 'string') return undefined;
    const asked = this.byId.get(id);
    if (!asked || data.hostIdentifier !== asked.host) return undefined;
    this.byId.delete(id);
    return { ...asked, queryId: id };
  }
}

function remember(map: Map<string, Asked>, key: string, v: Asked): void {
  if (map.size >= MAX_OUTSTANDING) map.delete(map.keys().next().value!);
  map.set(key, v);
}
