import { ConfigError } from '../config/errors.js';
import { readTextLines } from './text-file.js';
import { isValidFilter, isValidTopic, levelsContain, levelsMatch, levelsOverlap, MAX_TOPIC_BYTES } from './topic-filter.js';

export { topicMatchesFilter } from './topic-filter.js';

export type AclAccess = 'read' | 'write' | 'subscribe';
export interface AclSubject {
  /** Absent for a client that connected without a username. */
  username?: string;
  clientId: string;
}

const READ = 1;
const WRITE = 2;
const DENY = 0;
const ACCESS = new Map([
  ['read', READ],
  ['write', WRITE],
  ['readwrite', READ | WRITE],
  ['deny', DENY],
]);

interface Rule {
  levels: string[];
  access: number;
}
interface Pattern {
  filter: string;
  access: number;
  usesUser: boolean;
  usesClient: boolean;
}

type Relation = (rule: readonly string[], target: readonly string[]) => boolean;

const MAX_FILE_BYTES = 16 * 1024 * 1024;
const SHARE_RE = /^\$share\/[^/+#]+\/(.+)$/s;

/**
 * A loaded Mosquitto `acl_file`, evaluated as Mosquitto 2.0's default ACL check
 * (src/security_default.c) does:
 *
 * - `topic` lines before the first `user` line apply only to clients without a username;
 *   `topic` lines after `user NAME` apply to that user (repeated sections add up);
 *   a user the file does not name gets only the `pattern` lines; `pattern` lines apply to
 *   every client, wherever they stand in the file, with `%c`/`%u` replaced by client id/username.
 * - The client's own lines are checked first, then the patterns. Within each, a matching
 *   `deny` wins over any grant; a grant of the client's own lines wins over a pattern `deny`.
 * - When the file has patterns, a username or client id containing `+` or `#` is denied
 *   everything the client's own lines do not grant. A pattern that grants access through
 *   `%u`/`%c` never matches a username/client id containing `/` (mqprobe hardening: user
 *   `bob/x` must not reach `%u/#` of user `bob`); pattern denies still apply to them.
 * - A topic starting with `$` is never matched by a rule starting with a wildcard.
 *
 * Subscriptions: Mosquitto 2.0 grants every SUBSCRIBE and filters each message by `read`
 * access as it is delivered. mqprobe refuses a subscription (SUBACK 0x80) only when no
 * message could ever be delivered to it: a `deny` covers the whole filter, or no `read`
 * rule shares a topic with it. Deliveries stay exactly Mosquitto's when the broker also
 * checks `read` per message.
 */
export class AclFile {
  constructor(
    readonly path: string,
    private readonly anonymous: readonly Rule[],
    private readonly users: ReadonlyMap<string, readonly Rule[]>,
    private readonly patterns: readonly Pattern[],
  ) {}

  check(who: AclSubject, topic: string, access: AclAccess): boolean {
    const subscribe = access === 'subscribe';
    // a shared subscription delivers the messages of its inner filter
    const target = subscribe ? (SHARE_RE.exec(topic)?.[1] ?? topic) : topic;
    if (subscribe ? !isValidFilter(target) : !isValidTopic(target)) return false;
    const levels = target.split('/');
    const bit = access === 'write' ? WRITE : READ;
    const denies: Relation = subscribe ? levelsContain : levelsMatch;
    const grants: Relation = subscribe ? levelsOverlap : levelsMatch;

    const own = who.username === undefined ? this.anonymous : this.users.get(who.username);
    if (own) {
      const verdict = decide(own, bit, levels, denies, grants);
      if (verdict !== undefined) return verdict;
    }
    if (this.patterns.length === 0) return false;
    if (/[+#]/.test(who.clientId) || (who.username !== undefined && /[+#]/.test(who.username))) return false;
    const expanded = this.patterns.flatMap((p) => expand(p, who));
    return decide(expanded, bit, levels, denies, grants) ?? false;
  }
}

/** Deny first, then grants: the order Mosquitto keeps its rule lists in. */
function decide(rules: readonly Rule[], bit: number, target: string[], denies: Relation, grants: Relation): boolean | undefined {
  for (const r of rules) if (r.access === DENY && denies(r.levels, target)) return false;
  for (const r of rules) if (r.access & bit && grants(r.levels, target)) return true;
  return undefined;
}

function expand(p: Pattern, who: AclSubject): Rule[] {
  const user = who.username;
  if (p.usesUser && user === undefined) return [];
  if (p.access !== DENY && ((p.usesUser && user!.includes('/')) || (p.usesClient && who.clientId.includes('/')))) return [];
  const filter = p.filter.replace(/%[cu]/g, (m) => (m === '%c' ? who.clientId : user!));
  return [{ levels: filter.split('/'), access: p.access }];
}

/** Splits off the first blank-separated word. */
function firstWord(s: string): [string, string | undefined] {
  const m = /^(\S+)(?:[ \t]+(.*))?$/s.exec(s)!;
  return [m[1], m[2]?.trim() || undefined];
}

/**
 * Reads a Mosquitto `acl_file`. Grammar as Mosquitto 2.0 reads it: `# comment`, `user NAME`,
 * `topic [read|write|readwrite|deny] FILTER`, `pattern [read|write|readwrite|deny] FILTER`
 * (no access word means readwrite; the filter is the rest of the line and may contain spaces).
 * Tabs separate words as spaces do. An error names file and line.
 */
export async function loadAclFile(path: string): Promise<AclFile> {
  const lines = await readTextLines(path, { what: 'acl_file', maxBytes: MAX_FILE_BYTES, maxLineBytes: MAX_TOPIC_BYTES + 64 });
  let user: string | undefined;
  const anonymous: Rule[] = [];
  const users = new Map<string, Rule[]>();
  const patterns: Pattern[] = [];
  for (const { line, text } of lines) {
    const t = text.trim();
    if (t === '' || t.startsWith('#')) continue;
    const error = (detail: string) => new ConfigError({ file: path, line }, undefined, detail);
    const [keyword, rest] = firstWord(t);
    if (keyword === 'user') {
      if (rest === undefined) throw error('user needs a username');
      user = rest;
      continue;
    }
    if (keyword !== 'topic' && keyword !== 'pattern') throw error(`unknown keyword "${keyword}" (expected topic, pattern or user)`);
    if (rest === undefined) throw error(`${keyword} needs a topic filter`);
    const [word, tail] = firstWord(rest);
    const access = tail === undefined ? READ | WRITE : ACCESS.get(word);
    if (access === undefined) throw error(`invalid access "${word}" (expected read, write, readwrite or deny)`);
    const filter = tail ?? word;
    if (!isValidFilter(filter)) throw error(`invalid topic filter "${filter}" (wildcards must be whole levels, # only last)`);
    if (keyword === 'pattern') {
      patterns.push({ filter, access, usesUser: filter.includes('%u'), usesClient: filter.includes('%c') });
    } else {
      const list = user === undefined ? anonymous : (users.get(user) ?? users.set(user, []).get(user)!);
      list.push({ levels: filter.split('/'), access });
    }
  }
  return new AclFile(path, anonymous, users, patterns);
}
