import { randomUUID } from 'node:crypto';
import { JsonDepthError, parseBoundedJson } from '../../broker/bounded-json.js';

/** A distributed (ad-hoc) query waiting for agents to collect it on `distributed/read`. */
interface PendingQuery {
  sql: string;
  expiresAt: number;
  /** Host identifiers that have not collected it yet; undefined = every host (`"all"`), tracked by `collected`. */
  hosts?: Set<string>;
  collected: Set<string>;
}

/** A command from `beats/osquery/query`, validated. */
export interface QueryCommand {
  sql: string;
  hosts: string[] | 'all';
}

export class QueryCommandError extends Error {
  override name = 'QueryCommandError';
}

const MAX_SQL = 64 * 1024;
const MAX_HOSTS = 10_000;

/** Validates a command payload: `{"sql": "...", "hosts": [...] | "all"}`. */
export function parseQueryCommand(payload: Buffer): QueryCommand {
  let value: unknown;
  try {
    value = parseBoundedJson(payload);
  } catch (err) {
    if (err instanceof JsonDepthError) throw new QueryCommandError(`query command is ${err.message}`);
    throw new QueryCommandError('query command is not valid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new QueryCommandError('query command must be a JSON object');
  const { sql, hosts } = value as Record<string, unknown>;
  if (typeof sql !== 'string' || sql.trim() === '' || sql.length > MAX_SQL)
    throw new QueryCommandError(`sql must be a non-empty string of at most ${MAX_SQL} characters`);
  if (hosts === 'all') return { sql, hosts };
  if (!Array.isArray(hosts) || hosts.length === 0 || hosts.length > MAX_HOSTS || !hosts.every((h) => typeof h === 'string' && h !== '')) {
    throw new QueryCommandError(`hosts must be "all" or a list of 1 to ${MAX_HOSTS} host identifiers`);
  }
  return { sql, hosts: hosts as string[] };
}

/**
 * Queued distributed queries by id. An agent collects each query addressed to its host identifier once;
 * a query is dropped when every addressed host collected it or when it expires. Results are accepted
 * only from hosts the query was handed to.
 */
export class DistributedQueue {
  private readonly queries = new Map<string, PendingQuery>();
  /** Query id → host identifiers it was handed to and that have not answered yet. */
  private readonly awaiting = new Map<string, { hosts: Set<string>; expiresAt: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  add(cmd: QueryCommand): string {
    const id = randomUUID();
    this.queries.set(id, {
      sql: cmd.sql,
      expiresAt: this.now() + this.ttlMs,
      hosts: cmd.hosts === 'all' ? undefined : new Set(cmd.hosts),
      collected: new Set(),
    });
    return id;
  }

  /** The `queries` object of a `distributed/read` answer for this host. */
  read(host: string): Record<string, string> {
    this.expire();
    const out: Record<string, string> = {};
    for (const [id, q] of this.queries) {
      if (q.collected.has(host) || (q.hosts && !q.hosts.has(host))) continue;
      out[id] = q.sql;
      q.collected.add(host);
      let wait = this.awaiting.get(id);
      if (!wait) this.awaiting.set(id, (wait = { hosts: new Set(), expiresAt: q.expiresAt + this.ttlMs }));
      wait.hosts.add(host);
      if (q.hosts && q.collected.size === q.hosts.size) this.queries.delete(id);
    }
    return out;
  }

  /** True once per (query, host) the query was handed to: a replayed or unsolicited result is refused. */
  acceptResult(id: string, host: string): boolean {
    this.expire();
    const wait = this.awaiting.get(id);
    if (!wait?.hosts.delete(host)) return false;
    if (wait.hosts.size === 0 && !this.queries.has(id)) this.awaiting.delete(id);
    return true;
  }

  private expire(): void {
    const t = this.now();
    for (const [id, q] of this.queries) if (q.expiresAt <= t) this.queries.delete(id);
    for (const [id, w] of this.awaiting) if (w.expiresAt <= t) this.awaiting.delete(id);
  }
}
