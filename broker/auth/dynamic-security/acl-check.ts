import { isValidFilter, levelsMatch } from '../topic-filter.js';
import type { Acl, DynClient, Group, Role, RoleRef } from './model.js';

/** What a check is for: Mosquitto's MOSQ_ACL_WRITE, _READ, _SUBSCRIBE and _UNSUBSCRIBE. */
export type DynAccess = 'write' | 'read' | 'subscribe' | 'unsubscribe';

/** mosquitto_topic_matches_sub: an ACL topic that is no valid filter matches nothing. */
function publishMatches(acl: Acl, topic: string): boolean {
  return isValidFilter(acl.topic) && levelsMatch(acl.topic.split('/'), topic.split('/'));
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
 * matching, `#` alone covers `$` topics too.
 */
export function subPatternCovers(aclTopic: string, filter: string): boolean {
  if (aclTopic === '#') return true;
  const [acl, aclHash] = withoutHash(aclTopic);
  const [sub, subHash] = withoutHash(filter);
  if (subHash && !aclHash) return false;
  const a = acl.split('/');
  const s = sub.split('/');
  if (a.length > s.length || (s.length > a.length && !aclHash)) return false;
  return s.every((level, i) => (i < a.length ? a[i] === '+' || a[i] === level : aclHash));
}

/** One role's verdict: the first ACL (highest priority) that matches decides; undefined when none does. */
function roleVerdict(role: Role, topic: string, access: DynAccess): boolean | undefined {
  const first = (list: Acl[], matches: (a: Acl) => boolean) => list.find(matches)?.allow;
  switch (access) {
    case 'write':
      return first(role.acls.publishClientSend, (a) => publishMatches(a, topic));
    case 'read':
      return first(role.acls.publishClientReceive, (a) => publishMatches(a, topic));
    case 'subscribe':
      return (
        first(role.acls.subscribeLiteral, (a) => a.topic === topic) ??
        first(role.acls.subscribePattern, (a) => subPatternCovers(a.topic, topic))
      );
    case 'unsubscribe':
      return (
        first(role.acls.unsubscribeLiteral, (a) => a.topic === topic) ??
        first(role.acls.unsubscribePattern, (a) => subPatternCovers(a.topic, topic))
      );
  }
}

/** Roles in priority order until one decides. */
export function rolesVerdict(roles: readonly RoleRef[], topic: string, access: DynAccess): boolean | undefined {
  for (const r of roles) {
    const v = roleVerdict(r.role, topic, access);
    if (v !== undefined) return v;
  }
  return undefined;
}

/**
 * The plugin's acl_check: a client's own roles, then its groups' roles (groups in priority order);
 * a client without username is checked with the anonymous group. Undefined: nothing decided, the
 * default access applies.
 */
export function clientVerdict(client: DynClient | undefined, anonymousGroup: Group | undefined, topic: string, access: DynAccess) {
  if (!client) return anonymousGroup ? rolesVerdict(anonymousGroup.roles, topic, access) : undefined;
  const own = rolesVerdict(client.roles, topic, access);
  if (own !== undefined) return own;
  for (const { group } of client.groups) {
    const v = rolesVerdict(group.roles, topic, access);
    if (v !== undefined) return v;
  }
  return undefined;
}
