/**
 * JSON.parse for text from outside the process (network bodies, MQTT payloads, log lines): nesting
 * is bounded before parsing. Whether JSON.parse (and every recursive walk after it) overflows the
 * stack on deep input depends on the Node.js version: Node 20 throws a RangeError on 200,000 levels,
 * Node 26 parses them and the walk after it fails instead. 1,000 levels is cJSON's limit
 * (CJSON_NESTING_LIMIT), so Mosquitto's dynamic security plugin refuses the same texts.
 */

/** The deepest nesting of arrays and objects accepted. */
export const JSON_MAX_DEPTH = 1000;

/** A text refused for its nesting before parsing. A SyntaxError, so that callers treat it as invalid JSON. */
export class JsonDepthError extends SyntaxError {
  constructor(limit: number) {
    super(`JSON nested deeper than ${limit} levels`);
    this.name = 'JsonDepthError';
  }
}

/** Whether the nesting of arrays and objects in a JSON text passes `limit` (the scan stops there). */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c)
        i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x5b || ch === 0x7b) {
      if (++depth > limit) return true;
    } else if (ch === 0x5d || ch === 0x7d) depth--;
  }
  return false;
}

/** JSON.parse, refusing (JsonDepthError) nesting deeper than `maxDepth`; other errors as JSON.parse throws them. */
export function parseBoundedJson(text: string | Buffer, maxDepth = JSON_MAX_DEPTH): unknown {
  const s = typeof text === 'string' ? text : text.toString('utf8');
  if (jsonDepthExceeds(s, maxDepth)) throw new JsonDepthError(maxDepth);
  return JSON.parse(s);
}
