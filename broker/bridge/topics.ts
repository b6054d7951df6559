/**
 * A bridge's `topic` lines, with Mosquitto 2.0's prefix semantics (src/bridge_topic.c, send_publish.c,
 * handle_publish.c): the local side subscribes to local_prefix+pattern, the remote side to
 * remote_prefix+pattern; a message crossing is mapped by the FIRST topic line of its direction that has a
 * prefix and whose full topic matches it: the prefix of its side is removed (when the topic starts with
 * it) and the other side's prefix is added. A message that no prefixed line matches crosses unchanged.
 */
export type Direction = 'in' | 'out' | 'both';

export interface BridgeTopic {
  /** The pattern as written; undefined for `""` (the prefixes are then the whole topic). */
  pattern?: string;
  direction: Direction;
  qos: 0 | 1 | 2;
  /** undefined when absent or `""`. */
  localPrefix?: string;
  remotePrefix?: string;
  /** What the bridge subscribes to on each side. */
  localTopic: string;
  remoteTopic: string;
}

/** Why a topic line cannot be used, in Mosquitto's words where it has some. */
export class TopicLineError extends Error {}

const EMPTY = '""';

/** Parses the words after `topic`: `pattern [in|out|both [qos [local-prefix remote-prefix]]]`. */
export function parseTopicLine(words: string[]): BridgeTopic {
  if (words.length < 1 || words.length > 5) throw new TopicLineError(`expected 1 to 5 values, got ${words.length}`);
  const [rawPattern, rawDir = 'out', rawQos = '0', rawLocal, rawRemote] = words;
  if (!['in', 'out', 'both'].includes(rawDir)) throw new TopicLineError(`expected a direction in, out or both, got "${rawDir}"`);
  if (!/^[012]$/.test(rawQos)) throw new TopicLineError(`expected a QoS 0, 1 or 2, got "${rawQos}"`);
  if (rawLocal !== undefined && rawRemote === undefined)
    throw new TopicLineError('a local prefix needs a remote prefix after it (use "" for none)');
  const pattern = rawPattern === EMPTY ? undefined : rawPattern;
  const localPrefix = prefix(rawLocal, 'local');
  const remotePrefix = prefix(rawRemote, 'remote');
  if (pattern === undefined && (localPrefix === undefined || remotePrefix === undefined))
    throw new TopicLineError('an empty ("") topic needs both a local and a remote prefix (Mosquitto: "Bridge topic must not be empty")');
  if (pattern !== undefined) {
    const bad = subscriptionProblem(pattern);
    if (bad) throw new TopicLineError(`invalid topic pattern "${pattern}": ${bad}`);
  }
  const topic = {
    pattern,
    direction: rawDir as Direction,
    qos: Number(rawQos) as 0 | 1 | 2,
    localPrefix,
    remotePrefix,
    localTopic: (localPrefix ?? '') + (pattern ?? ''),
    remoteTopic: (remotePrefix ?? '') + (pattern ?? ''),
  };
  for (const [side, full] of [
    ['local', topic.localTopic],
    ['remote', topic.remoteTopic],
  ] as const) {
    const bad = subscriptionProblem(full);
    if (bad) throw new TopicLineError(`the ${side} topic "${full}" (prefix + pattern) is not a valid subscription: ${bad}`);
  }
  return topic;
}

function prefix(word: string | undefined, side: string): string | undefined {
  if (word === undefined || word === EMPTY) return undefined;
  if (/[+#]/.test(word))
    throw new TopicLineError(
      `invalid ${side} prefix "${word}": a prefix must not contain + or # (Mosquitto: "Invalid bridge topic ${side} prefix")`,
    );
  if (word.includes('\u0000')) throw new TopicLineError(`invalid ${side} prefix: NUL byte`);
  return word;
}

/** Why a subscription filter is invalid (MQTT 3.1.1 4.7), or undefined. */
export function subscriptionProblem(filter: string): string | undefined {
  if (filter === '') return 'empty';
  if (Buffer.byteLength(filter) > 65535) return 'longer than 65535 bytes';
  if (filter.includes('\u0000')) return 'NUL byte';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i];
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return '# must be a whole last level';
    if (l.includes('+') && l !== '+') return '+ must be a whole level';
  }
  return undefined;
}

/** MQTT topic matching (mosquitto_topic_matches_sub): wildcards in the first level never match a `$` topic. */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

const outward = (d: Direction) => d === 'out' || d === 'both';
const inward = (d: Direction) => d === 'in' || d === 'both';

/** The remote topic a local message goes out on. */
export function mapOut(topics: readonly BridgeTopic[], topic: string): string {
  for (const t of topics) {
    if (!outward(t.direction) || (t.localPrefix === undefined && t.remotePrefix === undefined)) continue;
    if (topicMatches(t.localTopic, topic)) return swapPrefix(topic, t.localPrefix, t.remotePrefix);
  }
  return topic;
}

/** The local topic a remote message comes in on. */
export function mapIn(topics: readonly BridgeTopic[], topic: string): string {
  for (const t of topics) {
    if (!inward(t.direction) || (t.localPrefix === undefined && t.remotePrefix === undefined)) continue;
    if (topicMatches(t.remoteTopic, topic)) return swapPrefix(topic, t.remotePrefix, t.localPrefix);
  }
  return topic;
}

function swapPrefix(topic: string, from: string | undefined, to: string | undefined): string {
  const rest = from !== undefined && topic.startsWith(from) ? topic.slice(from.length) : topic;
  return (to ?? '') + rest;
}

/** The subscriptions each side needs: local ones for out/both lines, remote ones for in/both. */
export function localSubscriptions(topics: readonly BridgeTopic[]): { topic: string; qos: 0 | 1 | 2 }[] {
  return topics.filter((t) => outward(t.direction)).map((t) => ({ topic: t.localTopic, qos: t.qos }));
}
export function remoteSubscriptions(topics: readonly BridgeTopic[]): { topic: string; qos: 0 | 1 | 2 }[] {
  return topics.filter((t) => inward(t.direction)).map((t) => ({ topic: t.remoteTopic, qos: t.qos }));
}
/** `out`-only remote topics: unsubscribed on connect when bridge_attempt_unsubscribe is true (a direction changed from in). */
export function outOnlyRemoteTopics(topics: readonly BridgeTopic[]): string[] {
  return topics.filter((t) => t.direction === 'out').map((t) => t.remoteTopic);
}

/** A mapped topic is published only if it is a valid topic name (Mosquitto drops others: handle_publish.c). */
export function validTopicName(topic: string): boolean {
  return topic !== '' && !/[+#]/.test(topic) && !topic.includes('\u0000') && Buffer.byteLength(topic) <= 65535;
}
