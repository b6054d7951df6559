/** One level of a browse path pattern: a browse name (optionally with its namespace index), `+` or `#`. */
export type PathLevel = { kind: 'name'; name: string; ns?: number } | { kind: 'one' } | { kind: 'any' };

/** An `opcua_monitor` value: a node id, or a browse path pattern resolved by browsing from the Root folder. */
export type MonitorSpec = { kind: 'node'; nodeId: string } | { kind: 'path'; pattern: string; levels: PathLevel[] };

/** Node ids in their string form: `i=85`, `ns=2;s=Device1.Temperature`, `ns=1;g=<guid>`, `ns=3;b=<base64>`. */
const NODE_ID = /^(?:ns=(\d+);)?([isgb])=(.*)$/s;
const IDENTIFIER: Record<string, RegExp> = {
  i: /^\d{1,10}$/,
  s: /^.{1,4096}$/s,
  g: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  b: /^[A-Za-z0-9+/]+={0,2}$/,
};

/**
 * Checked here without node-opcua, so that loading the config does not load it (its import costs a
 * 4096-bit RSA key generation); node-opcua parses the same text when the beat starts.
 */
function nodeIdError(ns: string | undefined, type: string, id: string): string | undefined {
  if (ns !== undefined && Number(ns) > 65535) return `namespace index ${ns} is above 65535`;
  if (!IDENTIFIER[type].test(id)) return `"${type}=" needs ${{ i: 'a number', s: 'a string', g: 'a GUID', b: 'base64 bytes' }[type]}`;
  if (type === 'i' && Number(id) > 0xffffffff) return `numeric identifier ${id} is above 4294967295`;
  return undefined;
}

export function parseMonitor(text: string): MonitorSpec | { error: string } {
  const value = text.trim();
  const n = NODE_ID.exec(value);
  if (n) {
    const error = nodeIdError(n[1], n[2], n[3]);
    return error ? { error: `node id "${value}": ${error}` } : { kind: 'node', nodeId: value };
  }
  const parts = value.replace(/^\/+/, '').split('/');
  const levels: PathLevel[] = [];
  for (const [i, part] of parts.entries()) {
    if (part === '') return { error: `browse path "${value}" has an empty level` };
    if (part === '+') levels.push({ kind: 'one' });
    else if (part === '#') {
      if (i !== parts.length - 1) return { error: `browse path "${value}": # may only stand last` };
      levels.push({ kind: 'any' });
    } else if (/[+#]/.test(part)) return { error: `browse path "${value}": + and # must be whole levels` };
    else {
      const m = /^(\d+):(.+)$/.exec(part);
      levels.push(m ? { kind: 'name', ns: Number(m[1]), name: m[2] } : { kind: 'name', name: part });
    }
  }
  return { kind: 'path', pattern: parts.join('/'), levels };
}
