/**
 * What the correlator reads from other beats' records: Zeek flows (conn) and their application
 * records (dns, ssl, http, by uid), and osquery rows that carry a process and a socket or tell a
 * host's address — recognised by their columns, whatever the query is called.
 */
import { isJsonObject } from '../shared/json-object.js';
import { isHostAddress, isWildcard, normalAddress, portOf } from './address.js';

type Rec = Record<string, unknown>;

/** One Zeek connection, as far as the join needs it. */
export interface Flow {
  uid: string;
  /** Epoch ms of the first packet and of the last (start + duration). */
  startMs: number;
  endMs: number;
  orig: string;
  origPort: number;
  resp: string;
  respPort: number;
  /** `tcp`, `udp`, `icmp` … as Zeek writes `proto`. */
  proto: string;
  /** The Zeek record as the Zeek beat emitted it. */
  record: Rec;
}

/** Why a record or row was not taken: counted per reason. */
export type Rejection = 'no-uid' | 'bad-address' | 'bad-port' | 'bad-time' | 'no-host' | 'no-pid';

const text = (v: unknown, max: number): string | undefined =>
  typeof v === 'string' && v !== '' && v !== '-' ? v.slice(0, max) : undefined;

/** A Zeek conn record → a flow, or the reason it cannot be joined. Flattened (`id.orig_h`) or nested (`id: {orig_h}`) ids. */
export function flowOf(rec: Rec): Flow | Rejection {
  const id = isJsonObject(rec.id) ? rec.id : {};
  const field = (name: string) => rec[`id.${name}`] ?? id[name];
  const uid = text(rec.uid, 64);
  if (!uid) return 'no-uid';
  const orig = normalAddress(field('orig_h'));
  const resp = normalAddress(field('resp_h'));
  if (!orig || !resp) return 'bad-address';
  const origPort = portOf(field('orig_p'));
  const respPort = portOf(field('resp_p'));
  if (origPort === undefined || respPort === undefined) return 'bad-port';
  if (typeof rec.ts !== 'number' || !Number.isFinite(rec.ts)) return 'bad-time';
  const duration = typeof rec.duration === 'number' && Number.isFinite(rec.duration) && rec.duration > 0 ? rec.duration : 0;
  const startMs = rec.ts * 1000;
  return {
    uid,
    startMs,
    endMs: startMs + duration * 1000,
    orig,
    origPort,
    resp,
    respPort,
    proto: text(rec.proto, 8) ?? 'unknown',
    record: rec,
  };
}

/** The part of a dns, ssl or http record a correlated flow carries. */
export interface AppRecord {
  uid: string;
  log: 'dns' | 'ssl' | 'http';
  summary: Rec;
}

export const APP_LOGS = new Set(['dns', 'ssl', 'http']);

export function appRecordOf(log: 'dns' | 'ssl' | 'http', rec: Rec): AppRecord | undefined {
  const uid = text(rec.uid, 64);
  if (!uid) return undefined;
  const pick = (...names: string[]) => {
    const out: Rec = {};
    for (const n of names) {
      const v = rec[n];
      if (typeof v === 'string' ? text(v, 2048) !== undefined : v !== undefined && v !== null)
        out[n] = typeof v === 'string' ? v.slice(0, 2048) : v;
    }
    return out;
  };
  const summary =
    log === 'dns'
      ? pick('query', 'qtype_name', 'rcode_name', 'answers')
      : log === 'ssl'
        ? pick('server_name', 'version', 'established', 'subject', 'issuer')
        : pick('host', 'method', 'uri', 'status_code', 'user_agent');
  return { uid, log, summary };
}

/** The process behind a socket row. */
export interface ProcessInfo {
  pid: number;
  name?: string;
  executable?: string;
  commandLine?: string;
  userId?: string;
  userName?: string;
}

/** Which kind of table a socket row comes from (by its columns). */
export type SocketSource = 'socket_events' | 'process_open_sockets' | 'listening_ports';

/** One socket of one process on one host. `remote` undefined: bound or listening, not connected. */
export interface SocketRow {
  host: string;
  hostId?: string;
  source: SocketSource;
  query: string;
  local: string;
  localPort: number;
  remote?: string;
  remotePort?: number;
  /** IANA protocol number (6 tcp, 17 udp) when the row says. */
  protocol?: number;
  /** Event time of the row, epoch ms. */
  timeMs: number;
  process: ProcessInfo;
}

/** What one osquery row tells the correlator. */
export type RowFact =
  | { kind: 'socket'; row: SocketRow }
  | { kind: 'address'; host: string; hostId?: string; address: string }
  | { kind: 'ignored' }
  | { kind: 'rejected'; reason: Rejection };

/** The osquery beats' result rows (`OsqueryResultRow`): query name, host, time, columns. */
export function rowFact(row: Rec, nowMs: number): RowFact {
  const cols = isJsonObject(row.columns) ? row.columns : undefined;
  if (!cols) return { kind: 'ignored' };
  const isSocket = 'pid' in cols && ('local_address' in cols || 'address' in cols) && ('local_port' in cols || 'port' in cols);
  const isInterface = !isSocket && 'interface' in cols && 'address' in cols;
  if (!isSocket && !isInterface) return { kind: 'ignored' };
  if (String(cols.family) === '1') return { kind: 'ignored' }; // AF_UNIX: no address to join on
  const decorations = isJsonObject(row.decorations) ? row.decorations : {};
  const host = text(row.hostIdentifier, 256);
  if (!host) return { kind: 'rejected', reason: 'no-host' };
  const hostId = text(decorations.host_uuid, 128);
  const local = normalAddress(cols.local_address ?? cols.address);
  if (isInterface) {
    if (local === undefined) return { kind: 'rejected', reason: 'bad-address' };
    return isHostAddress(local) ? { kind: 'address', host, hostId, address: local } : { kind: 'ignored' };
  }
  if (local === undefined) return { kind: 'rejected', reason: 'bad-address' };
  const pid = naturalOf(cols.pid);
  if (pid === undefined) return { kind: 'rejected', reason: 'no-pid' };
  const localPort = portOf(cols.local_port ?? cols.port);
  if (localPort === undefined) return { kind: 'rejected', reason: 'bad-port' };
  let remote: string | undefined;
  let remotePort: number | undefined;
  if ('remote_address' in cols) {
    remote = normalAddress(cols.remote_address);
    remotePort = portOf(cols.remote_port);
    if (remote === undefined && text(cols.remote_address, 64) !== undefined) return { kind: 'rejected', reason: 'bad-address' };
    if (remotePort === undefined && cols.remote_port !== undefined && cols.remote_port !== '')
      return { kind: 'rejected', reason: 'bad-port' };
    // a bound, unconnected socket (UDP, a listener) reports the unspecified peer
    if (remote === undefined || isWildcard(remote) || !remotePort) remote = remotePort = undefined;
  }
  const source: SocketSource = !('remote_address' in cols)
    ? 'listening_ports'
    : 'time' in cols || 'auid' in cols
      ? 'socket_events'
      : 'process_open_sockets';
  const protocol = naturalOf(cols.protocol);
  const eventTime = Number(cols.time ?? row.unixTime);
  const timeMs = Number.isFinite(eventTime) && eventTime > 0 ? eventTime * 1000 : nowMs;
  const path = text(cols.path, 4096);
  const executable = path?.startsWith('/') || (path !== undefined && /^[A-Za-z]:\\/.test(path)) ? path : text(cols.process_path, 4096);
  const name = text(cols.name, 256) ?? text(cols.process_name, 256) ?? executable?.split(/[/\\]/).pop();
  const userId = text(String(cols.uid ?? cols.auid ?? ''), 32);
  return {
    kind: 'socket',
    row: {
      host,
      hostId,
      source,
      query: text(row.name, 256) ?? '?',
      local,
      localPort,
      remote,
      remotePort,
      protocol: protocol === 6 || protocol === 17 ? protocol : undefined,
      timeMs,
      process: {
        pid,
        name,
        executable,
        commandLine: text(cols.cmdline, 8192),
        // auid 4294967295 is "unset" (a daemon started outside a login)
        userId: userId === '4294967295' || userId === '-1' ? undefined : userId,
        userName: text(cols.username, 256),
      },
    },
  };
}

/** A non-negative integer column (osquery writes numbers as text unless numerics are on). */
function naturalOf(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : NaN;
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}
