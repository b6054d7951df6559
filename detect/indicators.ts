import { readFileSync } from 'node:fs';
import ipaddr from 'ipaddr.js';

/**
 * The threat-intel lookup the detectors use: what the OpenCTI beat offers through the
 * IndicatorExchange (bridges/opencti/indicators.ts). Only the four lookups are
 * needed; each answers a falsy value for no match, or the matching indicator(s) — an object, an
 * array of them, or `true` — and the detectors take from an indicator what they find of `id`,
 * `name`, `pattern`, `description`, `score`/`confidence`.
 */
export interface IndicatorLookup {
  matchIp(ip: string): unknown;
  matchDomain(domain: string): unknown;
  matchUrl(url: string): unknown;
  matchHash(hash: string): unknown;
}

/**
 * The hand-over of the live indicator set from its provider (the OpenCTI beat) to the detectors, made
 * by the composition root: the beat offers its set once loaded and withdraws it when it stops; the
 * detectors look up the current one at each match (so a set that appears later is used from then on).
 */
export class IndicatorExchange {
  private set?: IndicatorLookup;

  offer(set: IndicatorLookup): void {
    this.set = set;
  }

  /** Withdraws `set` unless another one has replaced it since. */
  withdraw(set: IndicatorLookup): void {
    if (this.set === set) this.set = undefined;
  }

  current(): IndicatorLookup | undefined {
    return this.set;
  }
}

/** The exchange as a provider sees it. */
export type IndicatorOutlet = Pick<IndicatorExchange, 'offer' | 'withdraw'>;
/** The exchange as the detectors see it. */
export type IndicatorSource = Pick<IndicatorExchange, 'current'>;

export function isIndicatorLookup(v: unknown): v is IndicatorLookup {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    typeof o.matchIp === 'function' &&
    typeof o.matchDomain === 'function' &&
    typeof o.matchUrl === 'function' &&
    typeof o.matchHash === 'function'
  );
}

/** What an alert says about the matching indicator (ECS `threat.indicator.*` besides the matched value). */
export interface IndicatorInfo {
  name?: string;
  description?: string;
  reference?: string;
  confidence?: string;
  pattern?: string;
}

/** A lookup's answer as IndicatorInfo, or undefined for no match; a lookup that throws counts as no match. */
export function describeMatch(answer: unknown): IndicatorInfo | undefined {
  if (!answer) return undefined;
  if (Array.isArray(answer)) return answer.length === 0 ? undefined : describeMatch(answer[0]);
  if (typeof answer !== 'object') return {};
  const a = answer as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === 'string' && v !== '' ? v.slice(0, 1000) : undefined);
  const score =
    typeof a.score === 'number' ? String(a.score) : typeof a.confidence === 'number' ? String(a.confidence) : text(a.confidence);
  const info: IndicatorInfo = {
    name: text(a.name),
    description: text(a.description),
    reference: text(a.id) ?? text(a.standard_id),
    confidence: score,
    pattern: text(a.pattern),
  };
  for (const k of Object.keys(info) as (keyof IndicatorInfo)[]) if (info[k] === undefined) delete info[k];
  return info;
}

type Kind = 'ip' | 'domain' | 'url' | 'hash';

/**
 * A static indicator list for `mqprobe detect --replay --indicators FILE` and for tests: one
 * indicator per line, `ip <address or CIDR>`, `domain <name>` (matches its subdomains too),
 * `url <url>` or `hash <md5|sha1|sha256>`, optionally followed by a name; `#` starts a comment.
 */
export class IndicatorList implements IndicatorLookup {
  private exact = new Map<string, { kind: Kind; name?: string; value: string }>();
  private cidrs: { range: [ipaddr.IPv4 | ipaddr.IPv6, number]; name?: string; value: string }[] = [];

  static fromFile(path: string): IndicatorList {
    return IndicatorList.parse(readFileSync(path, 'utf8'), path);
  }

  static parse(text: string, where = 'indicators'): IndicatorList {
    const list = new IndicatorList();
    text.split(/\r?\n/).forEach((raw, i) => {
      const line = raw.replace(/#.*/, '').trim();
      if (line === '') return;
      const [kind, value, ...name] = line.split(/\s+/);
      const fail = (what: string) => {
        throw new Error(`${where}:${i + 1}: ${what}`);
      };
      if (value === undefined) fail('expected "<ip|domain|url|hash> <value> [name]"');
      list.add(kind as Kind, value, name.join(' ') || undefined, fail);
    });
    return list;
  }

  private add(kind: Kind, value: string, name: string | undefined, fail: (what: string) => never): void {
    switch (kind) {
      case 'ip':
        if (value.includes('/')) {
          if (!ipaddr.isValidCIDR(value)) fail(`"${value}" is not an address range`);
          this.cidrs.push({ range: ipaddr.parseCIDR(value), name, value });
        } else {
          if (!ipaddr.isValid(value)) fail(`"${value}" is not an address`);
          this.exact.set(`ip ${ipaddr.process(value).toString()}`, { kind, name, value });
        }
        return;
      case 'domain':
        this.exact.set(`domain ${value.toLowerCase().replace(/\.$/, '')}`, { kind, name, value });
        return;
      case 'url':
        this.exact.set(`url ${value}`, { kind, name, value });
        return;
      case 'hash':
        if (!/^([0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64})$/i.test(value)) fail(`"${value}" is not an md5, sha1 or sha256 hash`);
        this.exact.set(`hash ${value.toLowerCase()}`, { kind, name, value });
        return;
      default:
        fail(`unknown indicator kind "${kind}" (ip, domain, url, hash)`);
    }
  }

  matchIp(ip: string): unknown {
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      addr = ipaddr.process(ip);
    } catch {
      return undefined;
    }
    const hit = this.exact.get(`ip ${addr.toString()}`);
    if (hit) return hit;
    return this.cidrs.find((c) => c.range[0].kind() === addr.kind() && addr.match(c.range));
  }

  matchDomain(domain: string): unknown {
    let d = domain.toLowerCase().replace(/\.$/, '');
    for (;;) {
      const hit = this.exact.get(`domain ${d}`);
      if (hit) return hit;
      const dot = d.indexOf('.');
      if (dot < 0) return undefined;
      d = d.slice(dot + 1);
    }
  }

  matchUrl(url: string): unknown {
    return this.exact.get(`url ${url}`);
  }

  matchHash(hash: string): unknown {
    return this.exact.get(`hash ${hash.toLowerCase()}`);
  }
}
