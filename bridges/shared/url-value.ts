import type { ValueReader } from '../../broker/config/spec.js';

/**
 * A config value that must be one URL with one of the given schemes (`http:`, `https:`, …) and no
 * credentials in it (secrets go in `*_file` keys, named by credentialsKey); errors name the key and show an example.
 */
export function urlValue(v: ValueReader, protocols: readonly string[], example: string, credentialsKey?: string): URL {
  v.count(1);
  let u: URL;
  try {
    u = new URL(v.word());
  } catch {
    return v.fail(`expected a URL such as ${example}, got "${v.word()}"`);
  }
  if (!protocols.includes(u.protocol)) v.fail(`expected an ${protocols.map((p) => `${p}//`).join(' or ')} URL, got "${u.protocol}"`);
  if (u.username || u.password) v.fail(`credentials do not belong in the URL${credentialsKey ? `: use ${credentialsKey}` : ''}`);
  return u;
}
