/**
 * MQTT topic filter relations with Mosquitto's rules: `+` is one whole level, `#` is the last
 * level and also matches its parent (`a/#` matches `a`), and a topic starting with `$` is never
 * matched by a filter whose first level is a wildcard. Functions on `levels` take topics and
 * filters already split on `/` (the ACL hot path splits once per check).
 */

/** Mosquitto's TOPIC_HIERARCHY_LIMIT: at most this many `/` in a topic or filter. */
export const MAX_TOPIC_SEPARATORS = 200;
/** MQTT strings are at most this many bytes. */
export const MAX_TOPIC_BYTES = 65_535;

function isDollar(levels: readonly string[]): boolean {
  return levels[0].startsWith('$');
}

function withinLimits(s: string, levels: readonly string[]): boolean {
  return s !== '' && levels.length - 1 <= MAX_TOPIC_SEPARATORS && Buffer.byteLength(s) <= MAX_TOPIC_BYTES;
}

/** A valid subscription filter (mosquitto_sub_topic_check): wildcards only as whole levels, `#` last. */
export function isValidFilter(filter: string): boolean {
  const levels = filter.split('/');
  if (!withinLimits(filter, levels)) return false;
  return levels.every((l, i) => (l.includes('+') ? l === '+' : true) && (l.includes('#') ? l === '#' && i === levels.length - 1 : true));
}

/** A valid topic name to publish to: no wildcards (mosquitto_pub_topic_check). */
export function isValidTopic(topic: string): boolean {
  return !topic.includes('+') && !topic.includes('#') && withinLimits(topic, topic.split('/'));
}

/** Whether a valid filter matches a topic name (both split into levels). */
export function levelsMatch(filter: readonly string[], topic: readonly string[]): boolean {
  if (isDollar(filter) !== isDollar(topic)) return false;
  for (let i = 0; i < filter.length; i++) {
    const f = filter[i];
    if (f === '#') return true;
    if (i >= topic.length || (f !== '+' && f !== topic[i])) return false;
  }
  return filter.length === topic.length;
}

/** Whether every topic that `inner` matches is also matched by `outer` (mosquitto_sub_matches_acl). */
export function levelsContain(outer: readonly string[], inner: readonly string[]): boolean {
  if (isDollar(outer) !== isDollar(inner)) return false;
  for (let i = 0; ; i++) {
    const o = outer[i];
    const n = inner[i];
    if (o === '#') return true;
    if (n === undefined) return o === undefined;
    if (o === undefined || n === '#') return false;
    if (o !== '+' && o !== n) return false;
  }
}

/** Whether some topic name is matched by both filters. */
export function levelsOverlap(a: readonly string[], b: readonly string[]): boolean {
  if (isDollar(a) !== isDollar(b)) return false;
  for (let i = 0; ; i++) {
    const x = a[i];
    const y = b[i];
    if (x === '#' || y === '#') return true;
    if (x === undefined || y === undefined) return x === y;
    if (x !== '+' && y !== '+' && x !== y) return false;
  }
}

/** Whether `filter` matches the topic name `topic`; false for an invalid filter or topic. */
export function topicMatchesFilter(filter: string, topic: string): boolean {
  return isValidFilter(filter) && isValidTopic(topic) && levelsMatch(filter.split('/'), topic.split('/'));
}

/** Whether every topic `inner` can match is matched by `outer`; false for invalid filters. */
export function filterContains(outer: string, inner: string): boolean {
  return isValidFilter(outer) && isValidFilter(inner) && levelsContain(outer.split('/'), inner.split('/'));
}

/** Whether two filters have a topic in common; false for invalid filters. */
export function filtersOverlap(a: string, b: string): boolean {
  return isValidFilter(a) && isValidFilter(b) && levelsOverlap(a.split('/'), b.split('/'));
}
