import ipaddr from 'ipaddr.js';
import type { IndicatorLookup } from '../../detect/indicators.js';
import { extractValues, parsePattern, PatternError, type IndicatorValue, type ValueKind } from './pattern.js';

/** The STIX types whose objects can put values into the set: indicators and the observables the issue names. */
export const TRACKED_TYPES = new Set(['indicator', 'ipv4-addr', 'ipv6-addr', 'domain-name', 'url', 'file']);
const OPENCTI_EXTENSION = 'extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba';

/**
 * What the beat keeps of a tracked STIX object between events (persisted in the beat store): enough to
 * apply a later partial update (the older `x_opencti_patch` form sends only the changed fields) and
 * to say in an alert what matched.
 */
export interface Tracked {
  id: string;
  type: string;
  name?: string;
  description?: string;
  pattern?: string;
  pattern_type?: string;
  revoked?: boolean;
  value?: string;
  hashes?: Record<string, string>;
  score?: number;
  confidence?: number;
}

/** One live indicator: what a match answers (the fields detect/indicators.ts reads). */
export interface IndicatorEntry {
  id: string;
  stixType: string;
  name?: string;
  description?: string;
  pattern?: string;
  score?: number;
  confidence?: number;
  values: IndicatorValue[];
}

export type Derived = { entry: IndicatorEntry } | { none: string } | { unsupported: string } | { invalid: string };

/** The tracked fields of a full STIX object. */
export function trackedOf(stix: Record<string, unknown>): Tracked {
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const ext = (stix.extensions as Record<string, Record<string, unknown>> | undefined)?.[OPENCTI_EXTENSION];
  const hashes =
    stix.hashes && typeof stix.hashes === 'object' && !Array.isArray(stix.hashes)
      ? Object.fromEntries(Object.entries(stix.hashes).filter(([, v]) => typeof v === 'string'))
      : undefined;
  const t: Tracked = {
    id: String(stix.id),
    type: String(stix.type),
    name: str(stix.name),
    description: str(stix.description),
    pattern: str(stix.pattern),
    pattern_type: str(stix.pattern_type),
    revoked: stix.revoked === true ? true : undefined,
    value: str(stix.value),
    hashes: hashes as Record<string, string> | undefined,
    score: num(ext?.score) ?? num(stix.x_opencti_score),
    confidence: num(stix.confidence),
  };
  for (const k of Object.keys(t) as (keyof Tracked)[]) if (t[k] === undefined) delete t[k];
  return t;
}

/** Whether a value is well formed for its kind (a hostile stream must not fill the set with junk). */
function validValue(v: IndicatorValue): boolean {
  switch (v.kind) {
    case 'ip':
      return ipaddr.isValid(v.value) || ipaddr.isValidCIDR(v.value);
    case 'hash':
      return /^([0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{128})$/i.test(v.value);
    case 'domain':
      return v.value.length <= 253 && /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$/.test(v.value);
    case 'url':
      return v.value.length <= 8192 && URL.canParse(v.value);
  }
}

/** The live indicator a tracked object stands for, or why there is none (revoked, not a value the set matches, invalid). */
export function derive(t: Tracked): Derived {
  if (t.revoked) return { none: 'revoked' };
  let values: IndicatorValue[];
  if (t.type === 'indicator') {
    if (typeof t.pattern !== 'string') return { invalid: 'indicator without a pattern' };
    if ((t.pattern_type ?? 'stix') !== 'stix') return { unsupported: `pattern_type ${t.pattern_type}` };
    try {
      const r = extractValues(parsePattern(t.pattern));
      if (!r.ok) return { unsupported: r.reason };
      values = r.values;
    } catch (err) {
      if (err instanceof PatternError) return { invalid: `pattern: ${err.message}` };
      throw err;
    }
  } else if (t.type === 'file') {
    values = Object.values(t.hashes && typeof t.hashes === 'object' ? t.hashes : {})
      .filter((h) => typeof h === 'string')
      .map((h) => ({ kind: 'hash' as const, stixType: 'file', value: h }));
    if (values.length === 0) return { none: 'file without hashes' };
  } else {
    const kind: ValueKind = t.type === 'domain-name' ? 'domain' : t.type === 'url' ? 'url' : 'ip';
    if (typeof t.value !== 'string') return { invalid: `${t.type} without a value` };
    values = [{ kind, stixType: t.type, value: t.value }];
  }
  const bad = values.find((v) => !validValue(v));
  if (bad) return { invalid: `"${bad.value.slice(0, 100)}" is not a valid ${bad.kind}` };
  const { id, type, name, description, pattern, score, confidence } = t;
  return { entry: { id, stixType: type, name, description, pattern, score, confidence, values } };
}

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/**
 * The live indicator set: STIX id → indicator, and value indexes for the four lookups the detectors
 * use (detect/indicators.ts). Addresses may be CIDR ranges; domains match exactly (a STIX
 * `domain-name:value =` test names one domain); hashes of any algorithm, case-insensitively; URLs as
 * written. A lookup answers the matching indicators, or undefined.
 */
export class IndicatorSet implements IndicatorLookup {
  private readonly entries = new Map<string, IndicatorEntry>();
  private readonly exact = new Map<string, Set<string>>();
  private readonly ranges = new Map<string, { range: Range; ids: Set<string> }>();

  get size(): number {
    return this.entries.size;
  }

  ids(): string[] {
    return [...this.entries.keys()].sort();
  }

  get(id: string): IndicatorEntry | undefined {
    return this.entries.get(id);
  }

  /** Every entry's values as `<kind> <value>`, sorted (for tests and the API). */
  list(): IndicatorEntry[] {
    return this.ids().map((id) => this.entries.get(id)!);
  }

  set(entry: IndicatorEntry): void {
    this.remove(entry.id);
    this.entries.set(entry.id, entry);
    for (const v of entry.values) {
      const range = v.kind === 'ip' && v.value.includes('/') ? ipaddr.parseCIDR(v.value) : undefined;
      if (range) {
        const key = `${range[0].toString()}/${range[1]}`;
        let r = this.ranges.get(key);
        if (!r) this.ranges.set(key, (r = { range, ids: new Set() }));
        r.ids.add(entry.id);
      } else {
        const key = keyOf(v.kind, v.value);
        if (!key) continue;
        let ids = this.exact.get(key);
        if (!ids) this.exact.set(key, (ids = new Set()));
        ids.add(entry.id);
      }
    }
  }

  remove(id: string): boolean {
    const old = this.entries.get(id);
    if (!old) return false;
    this.entries.delete(id);
    const drop = (map: Map<string, Set<string>>, key: string) => {
      const ids = map.get(key);
      ids?.delete(id);
      if (ids?.size === 0) map.delete(key);
    };
    for (const [key, r] of this.ranges) {
      r.ids.delete(id);
      if (r.ids.size === 0) this.ranges.delete(key);
    }
    for (const v of old.values) {
      const key = keyOf(v.kind, v.value);
      if (key) drop(this.exact, key);
    }
    return true;
  }

  matchIp(ip: string): IndicatorEntry[] | undefined {
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      addr = ipaddr.process(ip);
    } catch {
      return undefined;
    }
    const ids = new Set(this.exact.get(`ip ${addr.toString()}`));
    for (const r of this.ranges.values()) if (r.range[0].kind() === addr.kind() && addr.match(r.range)) for (const id of r.ids) ids.add(id);
    return this.answer(ids);
  }

  matchDomain(domain: string): IndicatorEntry[] | undefined {
    return this.answer(this.exact.get(keyOf('domain', domain) ?? ''));
  }

  matchUrl(url: string): IndicatorEntry[] | undefined {
    return this.answer(this.exact.get(`url ${url}`));
  }

  matchHash(hash: string): IndicatorEntry[] | undefined {
    return this.answer(this.exact.get(`hash ${hash.toLowerCase()}`));
  }

  private answer(ids: Set<string> | undefined): IndicatorEntry[] | undefined {
    if (!ids || ids.size === 0) return undefined;
    return [...ids].map((id) => this.entries.get(id)!);
  }
}

function keyOf(kind: ValueKind, value: string): string | undefined {
  switch (kind) {
    case 'ip':
      try {
        return `ip ${ipaddr.process(value).toString()}`;
      } catch {
        return undefined;
      }
    case 'domain':
      return `domain ${value.toLowerCase().replace(/\.$/, '')}`;
    case 'hash':
      return `hash ${value.toLowerCase()}`;
    case 'url':
      return `url ${value}`;
  }
}
