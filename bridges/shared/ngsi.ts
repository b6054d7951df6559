/**
 * NGSI v2 (normalized) and NGSI-LD entity shapes for the `beat_format ngsi|ngsi-ld` outputs, as the
 * works-beats services produced them (../shared/works-beats-formats.md): entity ids
 * `urn:ngsi-ld:<Type>:<id>`; NGSI v2 attributes `{type, value, metadata}` typed String, Int, Long,
 * Double, Boolean, List (with `metadata.baseType`), StructuredValue or Relationship; NGSI-LD
 * attributes `{type: "Property", value}` or `{type: "Relationship", object}` with the core @context.
 */

export type NgsiFormat = 'ngsi' | 'ngsi-ld';

export const NGSI_LD_CORE_CONTEXT = 'https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld';

export interface NgsiEntityInput {
  /** Entity type, CamelCase (see camelCase()). */
  type: string;
  /** Entity id: a bare id (made `urn:ngsi-ld:<type>:<id>`) or already a URN. */
  id: string;
  /** Attribute name → plain JSON value; undefined values are left out, names are made NGSI-safe. */
  attributes: Record<string, unknown>;
  /** Attribute name → target entity URN(s), as `Relationship` attributes. */
  relations?: Record<string, string | string[]>;
  /** When the values were observed (epoch ms): v2 `TimeInstant` metadata, NGSI-LD `observedAt`. */
  time?: number;
}

/** `threat-actor` → `ThreatActor`, `system_info` → `SystemInfo`, `pack/Global/x` → `PackGlobalX`. */
export function camelCase(s: string): string {
  const words = s.split(/[^A-Za-z0-9]+/).filter(Boolean);
  const out = words.map((w) => w[0].toUpperCase() + w.slice(1)).join('');
  if (out === '') return 'Thing';
  return /^[0-9]/.test(out) ? `T${out}` : out;
}

/** `urn:ngsi-ld:<type>:<id>`, keeping an id that already is a URN; characters NGSI forbids in ids become `_`. */
export function entityUrn(type: string, id: string): string {
  const safe = id.replace(/[^A-Za-z0-9._:~@+-]/g, '_');
  return /^urn:/i.test(safe) ? safe : `urn:ngsi-ld:${type}:${safe}`;
}

/** Entity-level names NGSI v2 / NGSI-LD reserve; a source field with such a name is kept as `src_<name>`. */
const RESERVED = new Set([
  'id',
  'type',
  'context',
  'scope',
  'location',
  'observationSpace',
  'operationSpace',
  'createdAt',
  'modifiedAt',
  'deletedAt',
  'observedAt',
  'dateCreated',
  'dateModified',
]);

/** An attribute name both NGSI flavours accept: letters, digits and `_` (dots, dashes, spaces become `_`). */
export function attributeName(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_]/g, '_') || '_';
  return RESERVED.has(safe) ? `src_${safe}` : safe;
}

const INT32_MAX = 2 ** 31 - 1;

/** The works-beats NGSI v2 type name of a JSON value. */
function v2Type(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return 'String';
    case 'boolean':
      return 'Boolean';
    case 'number':
      if (!Number.isInteger(value)) return 'Double';
      return Math.abs(value) <= INT32_MAX ? 'Int' : 'Long';
    default:
      if (value === null) return 'None';
      return Array.isArray(value) ? 'List' : 'StructuredValue';
  }
}

/** One attribute in the given format; `time` is epoch ms. */
export function ngsiAttribute(format: NgsiFormat, value: unknown, time?: number): Record<string, unknown> {
  const observed = isoTime(time);
  if (format === 'ngsi-ld') return observed ? { type: 'Property', value, observedAt: observed } : { type: 'Property', value };
  const type = v2Type(value);
  const metadata: Record<string, { type: string; value: unknown }> = {};
  if (type === 'List') {
    const base = new Set((value as unknown[]).map(v2Type));
    if (base.size === 1) metadata.baseType = { type: 'Text', value: [...base][0] };
    else if (base.size > 1) metadata.baseType = { type: 'Text', value: 'Mixed' };
  }
  if (observed) metadata.TimeInstant = { type: 'DateTime', value: observed };
  return { type, value, metadata };
}

function relationship(format: NgsiFormat, target: string | string[]): Record<string, unknown> {
  return format === 'ngsi-ld' ? { type: 'Relationship', object: target } : { type: 'Relationship', value: target, metadata: {} };
}

/**
 * A whole entity in the given format. Attributes are defined as own properties, so that source fields
 * named `__proto__` or `constructor` become attributes like any other instead of touching the prototype.
 */
export function toNgsiEntity(format: NgsiFormat, input: NgsiEntityInput): Record<string, unknown> {
  const entity: Record<string, unknown> = { id: entityUrn(input.type, input.id), type: input.type };
  for (const [name, value] of Object.entries(input.attributes)) {
    if (value === undefined) continue;
    setOwn(entity, attributeName(name), ngsiAttribute(format, value, input.time));
  }
  for (const [name, target] of Object.entries(input.relations ?? {})) setOwn(entity, attributeName(name), relationship(format, target));
  if (format === 'ngsi-ld') entity['@context'] = NGSI_LD_CORE_CONTEXT;
  return entity;
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** ISO-8601 of epoch ms; undefined for no or an impossible time. */
function isoTime(ms: number | undefined): string | undefined {
  if (ms === undefined) return undefined;
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}
