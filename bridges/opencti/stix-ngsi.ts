import { camelCase, toNgsiEntity, type NgsiFormat } from '../shared/ngsi.js';

const STIX_ID = /^([a-z0-9-]+)--[0-9a-fA-F-]{36}$/;

const urnOf = (stixId: string) => `urn:ngsi-ld:${stixId}`;

/**
 * A STIX object as the works-beats OpenCTI beat mapped it (../shared/works-beats-formats.md): an
 * entity `urn:ngsi-ld:<stix id>` of type CamelCase(STIX type); every `*_ref` / `*_refs` holding STIX
 * ids becomes a `ref<TargetType>` relation (also listed in `relations`); `hashes` become one attribute
 * per algorithm; other fields are attributes.
 */
export function stixToNgsi(format: NgsiFormat, action: string, stix: Record<string, unknown>, time?: number): Record<string, unknown> {
  const id = typeof stix.id === 'string' ? stix.id : 'unknown';
  const type = camelCase(typeof stix.type === 'string' ? stix.type : 'stix-object');
  const attributes: Record<string, unknown> = {};
  const refs: Record<string, string[]> = {};
  const relations: { type: string; source: string; target: string; property: string }[] = [];
  for (const [key, value] of Object.entries(stix)) {
    if (key === 'id' || key === 'type') continue;
    const targets = /_refs?$/.test(key)
      ? (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === 'string' && STIX_ID.test(v))
      : [];
    if (targets.length > 0) {
      for (const target of targets) {
        const rel = `ref${camelCase(STIX_ID.exec(target)![1])}`;
        (refs[rel] ??= []).push(urnOf(target));
        relations.push({ type: rel, source: urnOf(id), target: urnOf(target), property: key });
      }
    } else if (key === 'hashes' && value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [alg, h] of Object.entries(value)) attributes[alg] = h;
    } else attributes[key] = value;
  }
  const relationAttrs = Object.fromEntries(Object.entries(refs).map(([k, v]) => [k, v.length === 1 ? v[0] : v]));
  const entity = toNgsiEntity(format, { type, id: urnOf(id), attributes, relations: relationAttrs, time });
  return { action, format: 'event', entities: [entity], relations };
}
