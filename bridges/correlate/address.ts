import ipaddr from 'ipaddr.js';

/**
 * One spelling per address, so that Zeek's and osquery's texts of the same address meet in one map
 * key: IPv4-mapped IPv6 (`::ffff:10.0.0.5`, as dual-stack sockets report IPv4 peers) becomes the IPv4
 * address, IPv6 is written compressed in lower case, a zone (`fe80::1%eth0`) is dropped. Undefined
 * for anything that is not an address (hostile or broken rows are skipped, never guessed at).
 */
export function normalAddress(v: unknown): string | undefined {
  if (typeof v !== 'string' || v.length === 0 || v.length > 64) return undefined;
  const text = v.includes('%') ? v.slice(0, v.indexOf('%')) : v;
  // dotted quads only: ipaddr's classful forms (`10.1`, `0x7f.1`) are not what either side writes
  if (!ipaddr.IPv4.isValidFourPartDecimal(text) && !(text.includes(':') && ipaddr.IPv6.isValid(text))) return undefined;
  try {
    return ipaddr.process(text).toString();
  } catch {
    return undefined;
  }
}

/** The unspecified address (`0.0.0.0`, `::`): a socket bound to every address of its host. */
export function isWildcard(addr: string): boolean {
  return addr === '0.0.0.0' || addr === '::';
}

/** Loopback and unspecified addresses never appear in a sensor's flows and never name a host. */
export function isHostAddress(addr: string): boolean {
  if (isWildcard(addr)) return false;
  const range = ipaddr.parse(addr).range();
  return range !== 'loopback' && range !== 'unspecified';
}

/** A port as osquery (text or number) or Zeek (number) gives it: an integer 0–65535, else undefined. */
export function portOf(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,5}$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) && n >= 0 && n <= 65535 ? n : undefined;
}

/** `ipv4` or `ipv6` (ECS `network.type`) of a normalised address. */
export function familyOf(addr: string): 'ipv4' | 'ipv6' {
  return addr.includes(':') ? 'ipv6' : 'ipv4';
}
