/**
 * Zeek's default log format (the ASCII writer, TSV): `#`-header lines declare the separators, the
 * unset and empty markers, the log's path, its fields and their types; each other line is one
 * record. Any log type works from its headers; values are typed from `#types`.
 */

/** A line that is not a valid Zeek record or header: counted and skipped by the beat. */
export class ZeekLineError extends Error {
  override name = 'ZeekLineError';
}

export interface TsvHeader {
  separator: string;
  setSeparator: string;
  emptyField: string;
  unsetField: string;
  path?: string;
  fields?: string[];
  types?: string[];
}

export function defaultTsvHeader(): TsvHeader {
  return { separator: '\t', setSeparator: ',', emptyField: '(empty)', unsetField: '-' };
}

/** Applies one `#…` header line; returns false for lines that are not header directives. */
export function applyHeaderLine(h: TsvHeader, line: string): boolean {
  if (line.startsWith('#separator')) {
    // the only directive whose value follows a space: the separator is not known yet
    h.separator = unescapeZeek(line.slice('#separator'.length).trim());
    if (h.separator === '') throw new ZeekLineError('empty #separator');
    return true;
  }
  const parts = line.split(h.separator);
  const values = parts.slice(1);
  switch (parts[0]) {
    case '#set_separator':
      h.setSeparator = unescapeZeek(values[0] ?? ',');
      return true;
    case '#empty_field':
      h.emptyField = values[0] ?? '(empty)';
      return true;
    case '#unset_field':
      h.unsetField = values[0] ?? '-';
      return true;
    case '#path':
      h.path = values[0];
      return true;
    case '#fields':
      h.fields = values;
      return true;
    case '#types':
      h.types = values;
      return true;
    case '#open':
    case '#close':
      return true;
    default:
      return false;
  }
}

/** Zeek's escapes in values: `\xHH` (a byte: separators, non-printable characters) and `\\`. */
export function unescapeZeek(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i];
    if (b === 0x5c && raw[i + 1] === 0x78 && isHex(raw[i + 2]) && isHex(raw[i + 3])) {
      bytes.push(parseInt(String.fromCharCode(raw[i + 2], raw[i + 3]), 16));
      i += 3;
    } else if (b === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i += 1;
    } else {
      bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function isHex(b: number | undefined): boolean {
  return b !== undefined && ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66));
}

const INTEGER = /^-?\d+$/;
const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

type Convert = (raw: string, h: TsvHeader) => unknown;

/** A value of a Zeek type as JSON; throws ZeekLineError for a value that is not of the type. */
function converter(type: string): Convert {
  switch (type) {
    case 'count':
    case 'int':
    case 'port':
      return (raw) => {
        if (!INTEGER.test(raw)) throw new ZeekLineError(`"${raw.slice(0, 40)}" is not a ${type}`);
        return Number(raw);
      };
    case 'time':
    case 'interval':
    case 'double':
      return (raw) => {
        if (!NUMBER.test(raw)) throw new ZeekLineError(`"${raw.slice(0, 40)}" is not a ${type}`);
        return Number(raw);
      };
    case 'bool':
      return (raw) => {
        if (raw === 'T') return true;
        if (raw === 'F') return false;
        throw new ZeekLineError(`"${raw.slice(0, 40)}" is not a bool`);
      };
    default: {
      const container = CONTAINER.exec(type);
      if (container) {
        const element = converter(container[2]);
        return (raw, h) => (raw === h.emptyField ? [] : raw.split(h.setSeparator).map((e) => (e === h.unsetField ? null : element(e, h))));
      }
      // string, enum, addr, subnet, pattern, and any type Zeek adds later
      return unescapeZeek;
    }
  }
}

const CONTAINER = /^(set|vector|table)\[(.+)\]$/;

/** A header's fields with their converters, built once per #fields/#types pair (not per record). */
interface Plan {
  fields: string[];
  types: string[];
  convert: Convert[];
  container: boolean[];
}
const plans = new WeakMap<TsvHeader, Plan>();

function planOf(h: TsvHeader, fields: string[], types: string[]): Plan {
  const known = plans.get(h);
  if (known && known.fields === fields && known.types === types) return known;
  const plan = { fields, types, convert: types.map(converter), container: types.map((t) => /^(set|vector|table)\[/.test(t)) };
  plans.set(h, plan);
  return plan;
}

/** A TSV record line → typed JSON; unset fields are left out. Throws ZeekLineError for a line that does not fit its header. */
export function parseTsvRecord(h: TsvHeader, line: string): Record<string, unknown> {
  const { fields, types } = h;
  if (!fields || !types || fields.length !== types.length) throw new ZeekLineError('record before a complete #fields/#types header');
  const values = line.split(h.separator);
  if (values.length !== fields.length) throw new ZeekLineError(`${values.length} values for ${fields.length} fields`);
  const { convert, container } = planOf(h, fields, types);
  const out: Record<string, unknown> = {};
  for (let i = 0; i < fields.length; i++) {
    const raw = values[i];
    if (raw === h.unsetField) continue;
    out[fields[i]] = raw === h.emptyField && !container[i] ? '' : convert[i](raw, h);
  }
  return out;
}
