import type { Observation } from '../observation.js';
import type { Params } from '../params.js';
import { isInternal, type DetectorEnv, type Emit, type Entities, type RuleDefinition } from '../detector.js';
import { describeMatch, type IndicatorLookup } from '../indicators.js';
import { parseBoundedJson } from '../../broker/bounded-json.js';

/** Beat payloads above this are not parsed for indicators (a Zeek or osquery record is far smaller). */
const MAX_RECORD_BYTES = 1024 * 1024;

type LookupKind = 'ip' | 'domain' | 'url' | 'hash';

interface Candidate {
  kind: LookupKind;
  value: string;
  /** The record field it came from. */
  field: string;
}

const ZEEK_IP_FIELDS = ['id.orig_h', 'id.resp_h', 'src', 'dst', 'tx_hosts', 'rx_hosts'];
const ZEEK_DOMAIN_FIELDS = ['query', 'server_name', 'host'];
const HASH_FIELDS = ['md5', 'sha1', 'sha256'];
const OSQUERY_IP_FIELDS = ['remote_address'];

type Rec = Record<string, unknown>;

/** A Zeek field, flattened (`"id.orig_h"`, Zeek's JSON writer) or nested (`{"id": {"orig_h"}}`). */
function field(rec: Rec, name: string): unknown {
  if (name in rec) return rec[name];
  const dot = name.indexOf('.');
  if (dot < 0) return undefined;
  const inner = rec[name.slice(0, dot)];
  return typeof inner === 'object' && inner !== null ? (inner as Rec)[name.slice(dot + 1)] : undefined;
}

/** A lookup value: set (Zeek writes `-` for unset) and of a sane length (hostile records are skipped). */
const usable = (x: unknown): x is string => typeof x === 'string' && x !== '' && x !== '-' && x.length <= 2048;

/** Usable strings of a field that is a string or an array (Zeek sets and vectors). */
function strings(v: unknown): string[] {
  if (usable(v)) return [v];
  return Array.isArray(v) ? v.filter(usable).slice(0, 100) : [];
}

/** A record's identifying text for the evidence, never more than a short string. */
const short = (v: unknown) => (typeof v === 'string' ? v.slice(0, 200) : undefined);

const IP_LIKE = /^[0-9a-fA-F:.]+$/;

function zeekCandidates(rec: Rec): Candidate[] {
  const out: Candidate[] = [];
  for (const f of ZEEK_IP_FIELDS) for (const v of strings(field(rec, f))) out.push({ kind: 'ip', value: v, field: f });
  for (const f of ZEEK_DOMAIN_FIELDS)
    for (const v of strings(field(rec, f))) out.push({ kind: IP_LIKE.test(v) ? 'ip' : 'domain', value: v, field: f });
  // dns answers are addresses and names (CNAMEs) mixed
  for (const v of strings(field(rec, 'answers'))) out.push({ kind: IP_LIKE.test(v) ? 'ip' : 'domain', value: v, field: 'answers' });
  const host = strings(field(rec, 'host'))[0];
  const uri = strings(field(rec, 'uri'))[0];
  if (host !== undefined && uri !== undefined) out.push({ kind: 'url', value: `http://${host}${uri}`, field: 'host+uri' });
  for (const f of HASH_FIELDS) for (const v of strings(field(rec, f))) out.push({ kind: 'hash', value: v, field: f });
  return out;
}

function osqueryCandidates(rec: Rec): Candidate[] {
  const cols = rec.columns;
  if (typeof cols !== 'object' || cols === null) return [];
  const c = cols as Rec;
  const out: Candidate[] = [];
  for (const f of HASH_FIELDS) for (const v of strings(c[f])) out.push({ kind: 'hash', value: v, field: `columns.${f}` });
  for (const f of OSQUERY_IP_FIELDS) for (const v of strings(c[f])) out.push({ kind: 'ip', value: v, field: `columns.${f}` });
  return out;
}

function lookup(set: IndicatorLookup, c: Candidate): unknown {
  try {
    switch (c.kind) {
      case 'ip':
        return set.matchIp(c.value);
      case 'domain':
        return set.matchDomain(c.value);
      case 'url':
        return set.matchUrl(c.value);
      case 'hash':
        return set.matchHash(c.value);
    }
  } catch {
    return undefined; // a broken lookup must not stop detection
  }
}

/** ECS `threat.indicator.*` for a matched value. */
export function indicatorFields(c: Candidate, info: Record<string, unknown>): Record<string, unknown> {
  const base = { provider: 'opencti', ...info };
  switch (c.kind) {
    case 'ip':
      return { ...base, type: c.value.includes(':') ? 'ipv6-addr' : 'ipv4-addr', ip: c.value };
    case 'domain':
      return { ...base, type: 'domain-name', url: { domain: c.value } };
    case 'url':
      return { ...base, type: 'url', url: { full: c.value } };
    case 'hash': {
      const algo = c.value.length === 32 ? 'md5' : c.value.length === 40 ? 'sha1' : 'sha256';
      return { ...base, type: 'file', file: { hash: { [algo]: c.value.toLowerCase() } } };
    }
  }
}

export function decodePayload(o: Observation): string | undefined {
  if (o.payload === undefined || o.payload.length > MAX_RECORD_BYTES * 2) return undefined;
  return o.payloadEncoding === 'base64' ? Buffer.from(o.payload, 'base64').toString('utf8') : o.payload;
}

export function parseRecord(text: string): Rec | undefined {
  if (text.length > MAX_RECORD_BYTES || text.charCodeAt(0) !== 123) return undefined; // '{'
  try {
    const v: unknown = parseBoundedJson(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Rec) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The record's own time (Zeek `ts` in epoch seconds, osquery `unixTime`, or `@timestamp`) for the
 * evidence; the alert itself is timed by the event that carried the record.
 */
function recordTime(rec: Rec): string | undefined {
  const unix = typeof rec.ts === 'number' ? rec.ts : typeof rec.unixTime === 'string' ? Number(rec.unixTime) : rec.unixTime;
  const ms =
    typeof unix === 'number' && Number.isFinite(unix)
      ? unix * 1000
      : typeof rec['@timestamp'] === 'string'
        ? Date.parse(rec['@timestamp'])
        : NaN;
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export const threatIntel: RuleDefinition = {
  spec: {
    name: 'threat-intel',
    description:
      'A client connecting from an address in the OpenCTI indicator set, or a Zeek or osquery record on the bus naming an indicator address, domain, URL or file hash.',
    entity: 'threat.indicator (with source.ip / mqtt.client_id)',
    risk: 'high',
    minimum: 'one connection from, or one record with, a value the indicator set matches',
    params: [
      {
        name: 'zeek_prefixes',
        kind: 'list',
        default: 'beats/zeek/',
        doc: 'Topic prefixes of Zeek records (raw JSON): `id.orig_h`/`id.resp_h`/`src`/`dst`, DNS `query`/`answers`, HTTP `host`/`uri`, SSL `server_name`, file hashes are looked up.',
      },
      {
        name: 'osquery_prefixes',
        kind: 'list',
        default: 'beats/osquery/result/,beats/fleet/result/',
        doc: 'Topic prefixes of osquery result rows (raw JSON): `columns.md5/sha1/sha256` and `columns.remote_address` are looked up.',
      },
    ],
  },
  create(p: Params, emit: Emit, env: DetectorEnv) {
    const zeek = p.list('zeek_prefixes');
    const osquery = p.list('osquery_prefixes');

    const report = (
      set: IndicatorLookup,
      c: Candidate,
      time: number,
      seq: number,
      entities: Entities,
      about: string,
      record?: Record<string, unknown>,
    ) => {
      const info = describeMatch(lookup(set, c));
      if (!info) return;
      emit({
        key: `${c.kind} ${c.value} ${entities.ip ?? entities.clientId ?? entities.topic ?? ''}`,
        time,
        message: `${about}: ${c.kind} ${c.value} is an OpenCTI indicator${info.name ? ` (${info.name})` : ''}`,
        entities,
        indicator: indicatorFields(c, info as Record<string, unknown>),
        evidence: { field: c.field, value: c.value, ...(record ?? {}), sequences: seq >= 0 ? [seq] : [] },
      });
    };

    const onRecord = (set: IndicatorLookup, o: Observation, text: string) => {
      const topic = o.topic!;
      const isZeek = zeek.some((z) => topic.startsWith(z));
      if (!isZeek && !osquery.some((q) => topic.startsWith(q))) return;
      const rec = parseRecord(text);
      if (!rec) return;
      const orig = strings(field(rec, 'id.orig_h'))[0];
      const resp = strings(field(rec, 'id.resp_h'))[0];
      const entities: Entities = isZeek ? { ip: orig, destinationIp: resp, topic } : { topic };
      const host = short(rec.hostIdentifier);
      const about = isZeek ? `Zeek record on ${topic}` : `osquery row on ${topic}${host ? ` from ${host}` : ''}`;
      const context = isZeek
        ? { uid: short(rec.uid), record_time: recordTime(rec) }
        : { query: short(rec.name), host_identifier: host, record_time: recordTime(rec) };
      for (const c of isZeek ? zeekCandidates(rec) : osqueryCandidates(rec)) report(set, c, o.time, o.seq, entities, about, context);
    };

    return {
      actions: ['client-connected', 'connection-refused', 'publish-received'],
      observe(o) {
        const set = env.indicators();
        if (!set) return;
        if (o.action === 'publish-received') {
          const text = o.topic === undefined ? undefined : decodePayload(o);
          if (text !== undefined) onRecord(set, o, text);
          return;
        }
        if (o.ip === undefined || isInternal(o.clientId)) return;
        const verb = o.action === 'client-connected' ? 'connected' : 'tried to connect';
        report(
          set,
          { kind: 'ip', value: o.ip, field: 'source.ip' },
          o.time,
          o.seq,
          { ip: o.ip, user: o.user, clientId: o.clientId },
          `client ${o.clientId ?? '?'} ${verb} from ${o.ip}`,
        );
      },
    };
  },
};
