/** Whether a parsed JSON value is an object (not null, not an array): what beats accept as a record. */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The deepest nesting of arrays and objects in a JSON text, stopping once it passes `limit`. Beats
 * refuse deeper input themselves: whether JSON.parse/stringify overflow the stack on it depends on
 * the Node.js version (Node 20 throws on 200,000 levels, Node 26 parses them), and a record that
 * deep is no one's telemetry.
 */
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
