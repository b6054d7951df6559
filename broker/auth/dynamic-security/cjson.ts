/**
 * JSON as Mosquitto's dynamic security plugin reads and writes it with cJSON: member names are
 * looked up case-insensitively (cJSON_GetObjectItem), integers are C ints (`valueint`), strings end
 * at U+0000 (C strings), and files are written as cJSON_Print formats them (tabs, arrays on one line).
 */
import { parseBoundedJson } from '../../bounded-json.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether a parsed value holds a lone UTF-16 surrogate (a `\ud800` escape), in a name or a string. */
function hasLoneSurrogate(v: Json): boolean {
  if (typeof v === 'string') return /\p{Cs}/u.test(v);
  if (Array.isArray(v)) return v.some(hasLoneSurrogate);
  if (isObject(v)) return Object.entries(v).some(([k, x]) => /\p{Cs}/u.test(k) || hasLoneSurrogate(x));
  return false;
}

/**
 * cJSON_Parse: JSON.parse, but an escaped lone surrogate and nesting deeper than 1,000 levels
 * (CJSON_NESTING_LIMIT) are errors as for cJSON. Throws a SyntaxError.
 */
export function parseCJson(text: string): Json {
  const v = parseBoundedJson(text) as Json;
  if (hasLoneSurrogate(v)) throw new SyntaxError('unpaired UTF-16 surrogate escape');
  return v;
}

/** cJSON_GetObjectItem: the first member whose name matches ignoring case. */
export function member(obj: JsonObject, name: string): Json | undefined {
  if (Object.hasOwn(obj, name)) return obj[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) return obj[k];
  return undefined;
}

/** A string member as a C string (cut at U+0000); `undefined` when absent, `false` when not a string. */
export function stringMember(obj: JsonObject, name: string): string | undefined | false {
  const v = member(obj, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') return false;
  const nul = v.indexOf('\0');
  return nul < 0 ? v : v.slice(0, nul);
}

/** cJSON's `valueint`: the number truncated and saturated to a C int. */
function valueInt(n: number): number {
  if (Number.isNaN(n)) return 0;
  if (n >= 2 ** 31 - 1) return 2 ** 31 - 1;
  if (n <= -(2 ** 31)) return -(2 ** 31);
  return Math.trunc(n);
}

/** json_get_int with a default: the default when absent or not a number. */
export function intMember(obj: JsonObject, name: string, dflt: number): number {
  const v = member(obj, name);
  return typeof v === 'number' ? valueInt(v) : dflt;
}

/** json_get_bool with a default: the default when absent or not a boolean. */
export function boolMember(obj: JsonObject, name: string, dflt: boolean): boolean {
  const v = member(obj, name);
  return typeof v === 'boolean' ? v : dflt;
}

/**
 * mosquitto_validate_utf8 on a string decoded from the payload: the payload was decoded with
 * replacement characters, so U+FFFD stands for bytes that were not UTF-8; U+0000, the C0/C1 control
 * characters, and the non-characters are refused as Mosquitto refuses them.
 */
export function validUtf8(s: string): boolean {
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f) || cp === 0xfffd || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) return false;
  }
  return true;
}

/** cJSON_Print: objects one member a line indented with tabs, `"name":\tvalue`, arrays on one line. */
export function printCJson(v: Json, depth = 0): string {
  if (Array.isArray(v)) return `[${v.map((x) => printCJson(x, depth + 1)).join(', ')}]`;
  if (isObject(v)) {
    const entries = Object.entries(v);
    const pad = '\t'.repeat(depth);
    if (entries.length === 0) return `{\n${pad}}`;
    return `{\n${entries.map(([k, x]) => `${pad}\t${JSON.stringify(k)}:\t${printCJson(x, depth + 1)}`).join(',\n')}\n${pad}}`;
  }
  return JSON.stringify(v);
}

/** Byte order of the UTF-8 encodings (strcmp), the order Mosquitto keeps its lists in. */
export function strcmp(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
