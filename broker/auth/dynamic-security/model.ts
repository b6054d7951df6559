import type { StoredHash } from '../password-hash.js';
import { strcmp } from './cjson.js';

/** The ACL types of a role, in the order Mosquitto lists and saves them. */
export const ACL_TYPES = [
  'publishClientSend',
  'publishClientReceive',
  'subscribeLiteral',
  'subscribePattern',
  'unsubscribeLiteral',
  'unsubscribePattern',
] as const;
export type AclType = (typeof ACL_TYPES)[number];

/** The default access kinds (`defaultACLAccess`). */
export const DEFAULT_ACCESS_TYPES = ['publishClientSend', 'publishClientReceive', 'subscribe', 'unsubscribe'] as const;
export type DefaultAccessType = (typeof DEFAULT_ACCESS_TYPES)[number];

export interface Acl {
  topic: string;
  priority: number;
  allow: boolean;
}

export interface Role {
  rolename: string;
  textname?: string;
  textdescription?: string;
  /** Per type, highest priority first; equal priorities in the order they were added. */
  acls: Record<AclType, Acl[]>;
}

/** A role held by a client or group; priority -1 means none was given (and none is written). */
export interface RoleRef {
  role: Role;
  priority: number;
}

/** PBKDF2-HMAC-SHA512 over a 12-byte salt, as the plugin stores it. */
export interface StoredPassword {
  hash: Buffer;
  salt: Buffer;
  iterations: number;
}

/** Mosquitto 2.1's `encoded_password`: a password file hash (`$7$…`, `$6$…`, `$argon2id$…`) and its text. */
export interface EncodedPassword {
  text: string;
  stored: StoredHash;
}

export interface DynClient {
  username: string;
  clientid?: string;
  textname?: string;
  textdescription?: string;
  disabled: boolean;
  /** As Mosquitto 2.0 stores it (`password`, `salt`, `iterations`), or as 2.1 does (`encoded_password`); kept in the form read. */
  password?: StoredPassword | EncodedPassword;
  roles: RoleRef[];
  /** The groups it belongs to, with the priority of that membership. */
  groups: { group: Group; priority: number }[];
}

export interface Group {
  groupname: string;
  textname?: string;
  textdescription?: string;
  roles: RoleRef[];
  clients: { client: DynClient; priority: number }[];
}

export function emptyAcls(): Record<AclType, Acl[]> {
  return {
    publishClientSend: [],
    publishClientReceive: [],
    subscribeLiteral: [],
    subscribePattern: [],
    unsubscribeLiteral: [],
    unsubscribePattern: [],
  };
}

/** Inserts after every ACL of the same or higher priority (uthash's HASH_ADD_INORDER with the plugin's order). */
export function insertAcl(list: Acl[], acl: Acl): void {
  const at = list.findIndex((a) => acl.priority > a.priority);
  list.splice(at < 0 ? list.length : at, 0, acl);
}

/** Role and group memberships: highest priority first, then by name. */
export function byPriorityThenName<T>(name: (x: T) => string): (a: T & { priority: number }, b: T & { priority: number }) => number {
  return (a, b) => b.priority - a.priority || strcmp(name(a), name(b));
}

export const sortRoleRefs = (refs: RoleRef[]): RoleRef[] => refs.sort(byPriorityThenName((r: RoleRef) => r.role.rolename));

/** Adds a role to a list unless the list holds it already; false if it did. */
export function addRoleRef(refs: RoleRef[], role: Role, priority: number): boolean {
  if (refs.some((r) => r.role === role)) return false;
  refs.push({ role, priority });
  sortRoleRefs(refs);
  return true;
}

/** Adds a client to a group (both sides); false if it was a member already. */
export function joinGroup(client: DynClient, group: Group, priority: number): boolean {
  if (group.clients.some((m) => m.client === client)) return false;
  group.clients.push({ client, priority });
  group.clients.sort((a, b) => strcmp(a.client.username, b.client.username));
  client.groups.push({ group, priority });
  client.groups.sort(byPriorityThenName((g: { group: Group }) => g.group.groupname));
  return true;
}

export function leaveGroup(client: DynClient, group: Group): void {
  group.clients = group.clients.filter((m) => m.client !== client);
  client.groups = client.groups.filter((m) => m.group !== group);
}
