/**
 * Topic templates of the Kafka bridge: `{N}` is the N-th level (1-based) of the topic a message came from, so
 * `zeek-{3}` makes `zeek-conn` of `beats/zeek/conn`. Checked when the config is read; applied per message.
 */
export type Template = (levels: string[]) => string | undefined;

/** The template as a function, or an error message. `maxLevel` is the highest `{N}` it uses. */
export function parseTemplate(s: string): { apply: Template; maxLevel: number } | string {
  const parts = s.split(/(\{\d+\})/);
  let maxLevel = 0;
  for (const p of parts) {
    const m = /^\{(\d+)\}$/.exec(p);
    if (m) {
      const n = Number(m[1]);
      if (n < 1) return `{${m[1]}}: levels count from {1}`;
      maxLevel = Math.max(maxLevel, n);
    } else if (/[{}]/.test(p)) return `"${s}": only {N} (a topic level, 1-based) may stand in braces`;
  }
  const apply: Template = (levels) => {
    let out = '';
    for (const p of parts) {
      const m = /^\{(\d+)\}$/.exec(p);
      if (!m) out += p;
      else {
        const level = levels[Number(m[1]) - 1];
        if (level === undefined) return undefined;
        out += level;
      }
    }
    return out;
  };
  return { apply, maxLevel };
}

/** A key that may stand for one MQTT topic level: no separator, wildcard or NUL, so a record cannot pick another topic. */
const LEVEL = /^[^/+#]{1,1024}$/;

/**
 * The MQTT topic template of `kafka_subscribe`: `{key}` is the Kafka record's key as one topic level
 * (`devices/{key}/cmd`). Returns the function, or an error message.
 */
export function parseMqttTemplate(
  s: string,
  isValidTopic: (t: string) => boolean,
): ((key: string | undefined) => string | undefined) | string {
  const parts = s.split('{key}');
  if (parts.some((p) => /[{}]/.test(p))) return `"${s}": only {key} (the record key) may stand in braces`;
  if (!isValidTopic(parts.join('x'))) return `"${s}" is not a valid MQTT topic name`;
  if (parts.length === 1) return () => s;
  return (key) => (key !== undefined && LEVEL.test(key) && !key.includes('\0') ? parts.join(key) : undefined);
}
