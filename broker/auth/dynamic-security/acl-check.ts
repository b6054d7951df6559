import { isValidFilter, levelsMatch } from '../topic-filter.js';
import type { Acl, DynClient, Group, Role, RoleRef } from './model.js';

/** What a check is for: Mosquitto's MOSQ_ACL_WRITE, _READ, _SUBSCRIBE and _UNSUBSCRIBE. */
export type DynAccess = 'write' | 'read' | 'subscribe' | 'unsubscribe';

/** Who is asking: `%u` and `%c` levels of an ACL stand for these (Mosquitto 2.1). */
export interface DynSubject {
  username?: string;
  clientId?: string;
}

/**
 * An ACL level after Mosquitto 2.1's substitution: a level that is exactly `%c` or `%u` becomes the
 * client id or username, compared literally (a `+` or `/` in it is no wildcard and no separator);
 * undefined when the client has none, so that level matches nothing.
 */
function level(l: string, who: DynSubject): { literal: string } | string | undefined {
  if (l === '%c') return who.clientId === undefined ? undefined : { literal: who.clientId };
  if (l === '%u') return who.username === undefined ? undefined : { literal: who.username };
  return l;
}

const same = (l: { literal: string } | string, s: string) => (typeof l === 'string' ? l === s : l.literal === s);

/** mosquitto_topic_matches_sub(_with_pattern): an ACL topic that is no valid filter matches nothing. */
function publishMatches(acl: Acl, topic: string, who: DynSubject): boolean {
  if (!isValidFilter(acl.topic)) return false;
  const f = acl.topic.split('/');
  if (!f.includes('%c') && !f.includes('%u')) return levelsMatch(f, topic.split('/'));
  const t = topic.split('/');
  if (t[0].startsWith('$') !== f[0].startsWith('$')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    const l = level(f[i], who);
    if (l === undefined || i >= t.length || (l !== '+' && !same(l, t[i]))) return false;
  }
  return f.length === t.length;
}

/** Strips a trailing `#` level (the plugin's hash_check); returns the rest and whether there was one. */
function withoutHash(s: string): [string, boolean] {
  if (s === '#') return ['', true];
  if (s.endsWith('/#')) return [s.slice(0, -2), true];
  return [s, false];
}

/**
 * The plugin's sub_acl_check: whether a subscribePattern/unsubscribePattern ACL covers a filter.
 * `+` in the ACL stands for one level of the filter (whatever it is, even `+`); `#` at the end of
 * the ACL for any further levels; a filter ending in `#` needs an ACL ending in `#`. Unlike topic
 * matching, `#` alone covers `$` topics too. `%c`/`%u` levels as in publishMatches.
 */
export function subPatternCovers(aclTopic: string, filter: string, who: DynSubject = {}): boolean {
  if (aclTopic === '#') return true;
  const [acl, aclHash] = withoutHash(aclTopic);
  const [sub, subHash] = withoutHash(filter);
  if (subHash && !aclHash) return false;
  const a = acl.split('/').map((l) => level(l, who));
  const s = sub.split('/');
  if (a.length > s.length || (s.length > a.length && !aclHash)) return false;
  return s.every((l, i) => {
    if (i >= a.length) return aclHash;
    const x = a[i];
    return x !== undefined && (x === '+' || same(x, l));
  });
}

/** One role's verdict: the first ACL (highest priority) that matches decides; undefined when none does. */
function roleVerdict(role: Role, topic: string, access: DynAccess, who: DynSubject): boolean | undefined {
  const first = (list: Acl[], matches: (a: Acl) => boolean) => list.find(matches)?.allow;
  switch (access) {
    case 'write':
      return first(role.acls.publishClientSend, (a) => publishMatches(a, topic, who));
    case 'read':
      return first(role.acls.publishClientReceive, (a) => publishMatches(a, topic, who));
    case 'subscribe':
      return (
        first(role.acls.subscribeLiteral, (a) => a.topic === topic) ??
        first(role.acls.subscribePattern, (a) => subPatternCovers(a.topic, topic, who))
      );
    case 'unsubscribe':
      return (
        first(role.acls.unsubscribeLiteral, (a) => a.topic === topic) ??
        first(role.acls.unsubscribePattern, (a) => subPatternCovers(a.topic, topic, who))
      );
  }
}

/** Roles in priority order until one decides. */
export function rolesVerdict(roles: readonly RoleRef[], topic: string, access: DynAccess, who: DynSubject): boolean | undefined {
  for (const r of roles) {
    const v = roleVerdict(r.role, topic, access, who);
    if (v !== undefined) return v;
  }
  return undefined;
}

/**
 * The plugin's acl_check: a client's own roles, then its groups' roles (groups in priority order);
 * a client without username is checked with the anonymous group. Undefined: nothing decided, the
 * default access applies.
 */
export function clientVerdict(
  client: DynClient | undefined,
  anonymousGroup: Group | undefined,
  topic: string,
  access: DynAccess,
  who: DynSubject,
) {
  if (!client) return anonymousGroup ? rolesVerdict(anonymousGroup.roles, topic, access, who) : undefined;
  const own = rolesVerdict(client.roles, topic, access, who);
  if (own !== undefined) return own;
  for (const { group } of client.groups) {
    const v = rolesVerdict(group.roles, topic, access, who);
    if (v !== undefined) return v;
  }
  return undefined;
}
