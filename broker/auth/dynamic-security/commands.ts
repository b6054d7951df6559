import { boolMember, intMember, isObject, member, stringMember, strcmp, validUtf8, type Json, type JsonObject } from './cjson.js';
import { readAcls, roleJson, roleRefsJson, type DynsecData } from './file.js';
import {
  ACL_TYPES,
  DEFAULT_ACCESS_TYPES,
  addRoleRef,
  emptyAcls,
  insertAcl,
  joinGroup,
  leaveGroup,
  type Acl,
  type DynClient,
  type Group,
  type Role,
  type RoleRef,
  type StoredPassword,
} from './model.js';

/** What a batch of commands changed beyond the data: who must reconnect, and whether to save. */
export interface Effects {
  kickUsers: Set<string>;
  kickAnonymous: boolean;
  changed: boolean;
}

/** One command's context: the data, where replies go, and the side effects. */
interface Ctx {
  d: DynsecData;
  responses: Json[];
  effects: Effects;
  correlation?: string;
  command: string;
  hash: (password: string) => StoredPassword;
}

/** A reply without data: `{command, error?, correlationData?}` (dynsec__command_reply). */
function reply(c: Ctx, error?: string, command = c.command): void {
  c.responses.push({
    command,
    ...(error !== undefined && { error }),
    ...(c.correlation !== undefined && { correlationData: c.correlation }),
  });
}

function dataReply(c: Ctx, data: JsonObject): void {
  c.responses.push({ command: c.command, data, ...(c.correlation !== undefined && { correlationData: c.correlation }) });
}

/** Thrown after the error reply is recorded: the command stops there. */
class Refused extends Error {}
function refuse(c: Ctx, error: string): never {
  reply(c, error);
  throw new Refused(error);
}

/** A required string member, checked as UTF-8 when `utf8` names the error for it. */
function required(c: Ctx, cmd: JsonObject, name: string, missing: string, utf8?: string): string {
  const v = stringMember(cmd, name);
  if (typeof v !== 'string') refuse(c, missing);
  if (utf8 && !validUtf8(v)) refuse(c, utf8);
  return v;
}

/** An optional string member: undefined when absent, refused when not a string. */
function optional(c: Ctx, cmd: JsonObject, name: string, invalid: string): string | undefined {
  const v = stringMember(cmd, name);
  if (v === false) refuse(c, invalid);
  return v;
}

/** A string member only when it is one (the plugin's `json_get_string(...) == SUCCESS` for modify commands). */
function present(cmd: JsonObject, name: string): string | undefined {
  const v = stringMember(cmd, name);
  return typeof v === 'string' ? v : undefined;
}

const username = (c: Ctx, cmd: JsonObject) => required(c, cmd, 'username', 'Invalid/missing username', 'Username not valid UTF-8');
const groupname = (c: Ctx, cmd: JsonObject) => required(c, cmd, 'groupname', 'Invalid/missing groupname', 'Group name not valid UTF-8');
const rolename = (c: Ctx, cmd: JsonObject) => required(c, cmd, 'rolename', 'Invalid/missing rolename', 'Role name not valid UTF-8');

function findClient(c: Ctx, name: string, error = 'Client not found'): DynClient {
  return c.d.clients.get(name) ?? refuse(c, error);
}
function findGroup(c: Ctx, name: string, error = 'Group not found'): Group {
  return c.d.groups.get(name) ?? refuse(c, error);
}
function findRole(c: Ctx, name: string, error = 'Role not found'): Role {
  return c.d.roles.get(name) ?? refuse(c, error);
}

/** A change made: the file is saved after the batch, and the command answered without error. */
function applied(c: Ctx): void {
  c.effects.changed = true;
  reply(c);
}
function kick(c: Ctx, user: string): void {
  c.effects.kickUsers.add(user);
}
function kickGroup(c: Ctx, group: Group): void {
  if (group === c.d.anonymousGroup) c.effects.kickAnonymous = true;
  for (const m of group.clients) kick(c, m.client.username);
}
/** Everyone a role applies to: its clients, and the members of its groups (role__kick_all). */
function kickRole(c: Ctx, role: Role): void {
  for (const client of c.d.clients.values()) if (client.roles.some((r) => r.role === role)) kick(c, client.username);
  for (const group of c.d.groups.values()) if (group.roles.some((r) => r.role === role)) kickGroup(c, group);
}

/**
 * dynsec_rolelist__load_from_json: `undefined` when the command has no `roles`; 'invalid' for a
 * non-array or an entry without a rolename string; 'not-found' for an unknown role.
 */
function roleList(c: Ctx, cmd: JsonObject): RoleRef[] | undefined | 'invalid' | 'not-found' {
  const j = member(cmd, 'roles');
  if (j === undefined) return undefined;
  if (!Array.isArray(j)) return 'invalid';
  const refs: RoleRef[] = [];
  for (const r of j) {
    const name = isObject(r) ? stringMember(r, 'rolename') : undefined;
    if (typeof name !== 'string') return 'invalid';
    const role = c.d.roles.get(name);
    if (!role) return 'not-found';
    addRoleRef(refs, role, intMember(r as JsonObject, 'priority', -1));
  }
  return refs;
}

const ROLES_INVALID = "'roles' not an array or missing/invalid rolename";

/** `groups`/`clients` entries of create and modify commands: objects with a name string. */
function namedEntries(j: Json | undefined, key: string): { name: string; priority: number }[] {
  if (!Array.isArray(j)) return [];
  return j.flatMap((e) => {
    const name = isObject(e) ? stringMember(e, key) : undefined;
    return typeof name === 'string' ? [{ name, priority: intMember(e as JsonObject, 'priority', -1) }] : [];
  });
}

function clientJson(client: DynClient, verbose: boolean): Json {
  if (!verbose) return client.username;
  return {
    username: client.username,
    ...(client.clientid !== undefined && { clientid: client.clientid }),
    ...(client.textname !== undefined && { textname: client.textname }),
    ...(client.textdescription !== undefined && { textdescription: client.textdescription }),
    ...(client.disabled && { disabled: true }),
    roles: roleRefsJson(client.roles),
    groups: client.groups.map((g) => ({ groupname: g.group.groupname, ...(g.priority !== -1 && { priority: g.priority }) })),
  };
}

function groupJson(group: Group): JsonObject {
  return {
    groupname: group.groupname,
    ...(group.textname !== undefined && { textname: group.textname }),
    ...(group.textdescription !== undefined && { textdescription: group.textdescription }),
    clients: group.clients.map((m) => ({ username: m.client.username })),
    roles: roleRefsJson(group.roles),
  };
}

/** list* commands: `offset`, and `count` as the plugin counts it (0 or 1 both give one entry). */
function page<T>(cmd: JsonObject, all: T[]): T[] {
  let count = intMember(cmd, 'count', -1);
  const offset = intMember(cmd, 'offset', 0);
  const out: T[] = [];
  for (let i = 0; i < all.length; i++) {
    if (i < offset) continue;
    out.push(all[i]);
    if (count >= 0 && --count <= 0) break;
  }
  return out;
}

const sorted = <T>(m: Map<string, T>): T[] => [...m.entries()].sort(([a], [b]) => strcmp(a, b)).map(([, v]) => v);

function deleteClient(c: Ctx, client: DynClient): void {
  for (const { group } of [...client.groups]) leaveGroup(client, group);
  c.d.clients.delete(client.username);
}

/** mosquitto_sub_topic_check: wildcards only as whole levels, `#` last (an empty topic passes). */
function validAclTopic(topic: string): boolean {
  const levels = topic.split('/');
  if (Buffer.byteLength(topic) > 65_535) return false;
  return levels.every((l, i) => (!l.includes('+') || l === '+') && (!l.includes('#') || (l === '#' && i === levels.length - 1)));
}

function aclList(c: Ctx, cmd: JsonObject, role: Role): Acl[] {
  const t = member(cmd, 'acltype');
  if (typeof t !== 'string') refuse(c, 'Invalid/missing acltype');
  const type = ACL_TYPES.find((x) => x.toLowerCase() === t.toLowerCase());
  if (!type) refuse(c, 'Unknown acltype');
  return role.acls[type];
}

function aclTopic(c: Ctx, cmd: JsonObject): string {
  const topic = stringMember(cmd, 'topic');
  if (typeof topic !== 'string') refuse(c, 'Invalid/missing topic');
  if (!validUtf8(topic)) refuse(c, 'Topic not valid UTF-8');
  if (!validAclTopic(topic)) refuse(c, 'Invalid ACL topic');
  return topic;
}

function allAcls(j: Json | undefined): Role['acls'] | undefined {
  if (!Array.isArray(j)) return undefined;
  const acls = emptyAcls();
  for (const t of ACL_TYPES) acls[t] = readAcls(j, t);
  return acls;
}

type Handler = (c: Ctx, cmd: JsonObject) => void;

/** modify*: `textname`/`textdescription` change when given as strings. */
function modifyTexts(x: { textname?: string; textdescription?: string }, cmd: JsonObject): void {
  const textname = present(cmd, 'textname');
  if (textname !== undefined) x.textname = textname;
  const textdescription = present(cmd, 'textdescription');
  if (textdescription !== undefined) x.textdescription = textdescription;
}

/** modifyClient/modifyGroup: `roles`, when given, replace the holder's; a bad list is refused, and the holder's clients are disconnected anyway (as the plugin). */
function replaceRoles(c: Ctx, cmd: JsonObject, holder: { roles: RoleRef[] }, kickHolder: () => void): void {
  const roles = roleList(c, cmd);
  if (roles === 'not-found' || roles === 'invalid') {
    kickHolder();
    refuse(c, roles === 'invalid' ? ROLES_INVALID : 'Role not found');
  }
  if (roles) holder.roles = roles;
}

/**
 * add/remove Client/Group Role: names read and checked in the plugin's order (holder, role,
 * priority; then holder found, role found), the role added (refused with `already` when held) or
 * removed, and the holder's clients disconnected.
 */
function roleMembership<H extends { roles: RoleRef[] }>(
  c: Ctx,
  cmd: JsonObject,
  holderName: (c: Ctx, cmd: JsonObject) => string,
  find: (c: Ctx, name: string) => H,
  kickHolder: (holder: H) => void,
  already?: string,
): void {
  const name = holderName(c, cmd);
  const rname = rolename(c, cmd);
  const priority = intMember(cmd, 'priority', -1);
  const holder = find(c, name);
  const role = findRole(c, rname);
  if (already === undefined) holder.roles = holder.roles.filter((r) => r.role !== role);
  else if (!addRoleRef(holder.roles, role, priority)) refuse(c, already);
  applied(c);
  kickHolder(holder);
}

/** The v1 API of Mosquitto 2.0's plugin, command by command (names are matched ignoring case). */
const HANDLERS: Record<string, Handler> = {
  setDefaultACLAccess(c, cmd) {
    const acls = member(cmd, 'acls');
    if (!Array.isArray(acls)) refuse(c, 'Missing/invalid actions array');
    for (const a of acls) {
      if (!isObject(a)) continue;
      const type = member(a, 'acltype');
      const allow = member(a, 'allow');
      if (typeof type !== 'string' || typeof allow !== 'boolean') continue;
      const k = DEFAULT_ACCESS_TYPES.find((x) => x.toLowerCase() === type.toLowerCase());
      if (k) c.d.defaultAccess[k] = allow;
    }
    applied(c);
  },
  getDefaultACLAccess(c) {
    dataReply(c, { acls: DEFAULT_ACCESS_TYPES.map((k) => ({ acltype: k, allow: c.d.defaultAccess[k] })) });
  },

  createClient(c, cmd) {
    const name = username(c, cmd);
    const password = optional(c, cmd, 'password', 'Invalid/missing password');
    const clientid = optional(c, cmd, 'clientid', 'Invalid/missing client id');
    if (clientid !== undefined && !validUtf8(clientid)) refuse(c, 'Client ID not valid UTF-8');
    const textname = optional(c, cmd, 'textname', 'Invalid/missing textname');
    const textdescription = optional(c, cmd, 'textdescription', 'Invalid/missing textdescription');
    if (c.d.clients.has(name)) refuse(c, 'Client already exists');
    const roles = roleList(c, cmd);
    if (roles === 'not-found') refuse(c, 'Role not found');
    if (roles === 'invalid') refuse(c, ROLES_INVALID);
    const client: DynClient = {
      username: name,
      clientid: clientid || undefined,
      textname,
      textdescription,
      disabled: false,
      password: password === undefined ? undefined : c.hash(password),
      roles: roles ?? [],
      groups: [],
    };
    c.d.clients.set(name, client);
    for (const g of namedEntries(member(cmd, 'groups'), 'groupname')) {
      const group = c.d.groups.get(g.name);
      if (!group || !joinGroup(client, group, g.priority)) {
        deleteClient(c, client);
        refuse(c, group ? 'Internal error' : 'Group not found');
      }
    }
    applied(c);
  },
  deleteClient(c, cmd) {
    const name = required(c, cmd, 'username', 'Invalid/missing username');
    deleteClient(c, findClient(c, name));
    applied(c);
    kick(c, name);
  },
  disableClient(c, cmd) {
    const name = username(c, cmd);
    findClient(c, name).disabled = true;
    kick(c, name);
    applied(c);
  },
  enableClient(c, cmd) {
    findClient(c, username(c, cmd)).disabled = false;
    applied(c);
  },
  setClientId(c, cmd) {
    const name = username(c, cmd);
    const clientid = optional(c, cmd, 'clientid', 'Invalid/missing client ID');
    if (clientid !== undefined && !validUtf8(clientid)) refuse(c, 'Client ID not valid UTF-8');
    findClient(c, name).clientid = clientid || undefined;
    applied(c);
    kick(c, name);
  },
  setClientPassword(c, cmd) {
    const name = username(c, cmd);
    const password = required(c, cmd, 'password', 'Invalid/missing password');
    if (password === '') refuse(c, 'Empty password is not allowed');
    findClient(c, name).password = c.hash(password);
    applied(c);
    kick(c, name);
  },
  modifyClient(c, cmd) {
    const name = username(c, cmd);
    const client = findClient(c, name);
    const clientid = present(cmd, 'clientid');
    if (clientid !== undefined) client.clientid = clientid || undefined;
    const password = present(cmd, 'password');
    if (password) client.password = c.hash(password); // an empty password leaves the old one
    modifyTexts(client, cmd);
    replaceRoles(c, cmd, client, () => kick(c, name));
    const groups = member(cmd, 'groups');
    if (Array.isArray(groups)) {
      for (const { group } of [...client.groups]) leaveGroup(client, group);
      for (const g of namedEntries(groups, 'groupname')) {
        const group = c.d.groups.get(g.name);
        if (group) joinGroup(client, group, g.priority);
      }
    }
    applied(c);
    kick(c, name);
  },
  getClient(c, cmd) {
    dataReply(c, { client: clientJson(findClient(c, username(c, cmd)), true) });
  },
  listClients(c, cmd) {
    const verbose = boolMember(cmd, 'verbose', false);
    const all = sorted(c.d.clients);
    dataReply(c, { totalCount: all.length, clients: page(cmd, all).map((x) => clientJson(x, verbose)) });
  },
  // 'Internal error' is the plugin's answer to a role the client holds already
  addClientRole: (c, cmd) => roleMembership(c, cmd, username, findClient, (x) => kick(c, x.username), 'Internal error'),
  removeClientRole: (c, cmd) => roleMembership(c, cmd, username, findClient, (x) => kick(c, x.username)),

  addGroupClient(c, cmd) {
    const name = username(c, cmd);
    const gname = groupname(c, cmd);
    const priority = intMember(cmd, 'priority', -1);
    try {
      const client = findClient(c, name);
      const group = findGroup(c, gname);
      if (!joinGroup(client, group, priority)) refuse(c, 'Client is already in this group');
      applied(c);
    } finally {
      kick(c, name);
    }
  },
  removeGroupClient(c, cmd) {
    const name = username(c, cmd);
    const gname = groupname(c, cmd);
    try {
      leaveGroup(findClient(c, name), findGroup(c, gname));
      applied(c);
    } finally {
      kick(c, name);
    }
  },
  createGroup(c, cmd) {
    const name = groupname(c, cmd);
    const textname = optional(c, cmd, 'textname', 'Invalid/missing textname');
    const textdescription = optional(c, cmd, 'textdescription', 'Invalid/missing textdescription');
    if (c.d.groups.has(name)) refuse(c, 'Group already exists');
    const roles = roleList(c, cmd);
    if (roles === 'not-found') refuse(c, 'Role not found');
    if (roles === 'invalid') refuse(c, 'Internal error');
    c.d.groups.set(name, { groupname: name, textname, textdescription, roles: roles ?? [], clients: [] });
    applied(c);
  },
  deleteGroup(c, cmd) {
    const group = findGroup(c, groupname(c, cmd));
    kickGroup(c, group);
    for (const m of [...group.clients]) leaveGroup(m.client, group);
    c.d.groups.delete(group.groupname);
    // Mosquitto 2.0.11 keeps a dangling anonymous group here; mqprobe forgets it
    if (c.d.anonymousGroup === group) c.d.anonymousGroup = undefined;
    applied(c);
  },
  getGroup(c, cmd) {
    dataReply(c, { group: groupJson(findGroup(c, groupname(c, cmd))) });
  },
  listGroups(c, cmd) {
    const verbose = boolMember(cmd, 'verbose', false);
    const all = sorted(c.d.groups);
    dataReply(c, { totalCount: all.length, groups: page(cmd, all).map((g) => (verbose ? groupJson(g) : g.groupname)) });
  },
  modifyGroup(c, cmd) {
    const name = groupname(c, cmd);
    const group = findGroup(c, name);
    modifyTexts(group, cmd);
    replaceRoles(c, cmd, group, () => kickGroup(c, group));
    const clients = member(cmd, 'clients');
    if (Array.isArray(clients)) {
      for (const m of [...group.clients]) leaveGroup(m.client, group);
      for (const e of namedEntries(clients, 'username')) {
        const client = c.d.clients.get(e.name);
        if (client) joinGroup(client, group, e.priority);
      }
    }
    applied(c);
    kickGroup(c, group);
  },
  addGroupRole: (c, cmd) => roleMembership(c, cmd, groupname, findGroup, (g) => kickGroup(c, g), 'Group is already in this role'),
  removeGroupRole: (c, cmd) => roleMembership(c, cmd, groupname, findGroup, (g) => kickGroup(c, g)),
  setAnonymousGroup(c, cmd) {
    c.d.anonymousGroup = findGroup(c, groupname(c, cmd));
    applied(c);
    c.effects.kickAnonymous = true;
  },
  getAnonymousGroup(c) {
    dataReply(c, { group: { groupname: c.d.anonymousGroup?.groupname ?? '' } });
  },

  createRole(c, cmd) {
    const name = rolename(c, cmd);
    const textname = optional(c, cmd, 'textname', 'Invalid/missing textname');
    const textdescription = optional(c, cmd, 'textdescription', 'Invalid/missing textdescription');
    if (c.d.roles.has(name)) refuse(c, 'Role already exists');
    c.d.roles.set(name, { rolename: name, textname, textdescription, acls: allAcls(member(cmd, 'acls')) ?? emptyAcls() });
    applied(c);
  },
  getRole(c, cmd) {
    dataReply(c, { role: roleJson(findRole(c, rolename(c, cmd))) });
  },
  listRoles(c, cmd) {
    const verbose = boolMember(cmd, 'verbose', false);
    const all = sorted(c.d.roles);
    dataReply(c, { totalCount: all.length, roles: page(cmd, all).map((r) => (verbose ? roleJson(r) : r.rolename)) });
  },
  modifyRole(c, cmd) {
    const role = findRole(c, rolename(c, cmd), 'Role does not exist');
    modifyTexts(role, cmd);
    const acls = allAcls(member(cmd, 'acls'));
    if (acls) role.acls = acls;
    applied(c);
  },
  deleteRole(c, cmd) {
    const role = findRole(c, rolename(c, cmd));
    kickRole(c, role);
    for (const x of [...c.d.clients.values(), ...c.d.groups.values()]) x.roles = x.roles.filter((r) => r.role !== role);
    c.d.roles.delete(role.rolename);
    applied(c);
  },
  addRoleACL(c, cmd) {
    const role = findRole(c, rolename(c, cmd));
    const list = aclList(c, cmd, role);
    const topic = aclTopic(c, cmd);
    if (list.some((a) => a.topic === topic)) refuse(c, 'ACL with this topic already exists');
    insertAcl(list, { topic, priority: intMember(cmd, 'priority', 0), allow: boolMember(cmd, 'allow', false) });
    applied(c);
    kickRole(c, role);
  },
  removeRoleACL(c, cmd) {
    const role = findRole(c, rolename(c, cmd));
    const list = aclList(c, cmd, role);
    const topic = aclTopic(c, cmd);
    const at = list.findIndex((a) => a.topic === topic);
    if (at < 0) refuse(c, 'ACL not found');
    list.splice(at, 1);
    applied(c);
    kickRole(c, role);
  },
};

const BY_LOWER_NAME = new Map(Object.entries(HANDLERS).map(([k, h]) => [k.toLowerCase(), [k, h] as const]));

/** Who sent a command, for the log line the plugin writes about it. */
export interface CommandLog {
  (command: string): void;
}

/**
 * Runs the `commands` array of one control message (dynsec__handle_control) and returns the
 * `responses` array. A `correlationData` that is not a string stops the batch, as in the plugin;
 * a missing `command` reuses the previous correlationData, as the plugin does.
 */
export function runCommands(
  d: DynsecData,
  commands: Json[],
  effects: Effects,
  hash: (password: string) => StoredPassword,
  log: CommandLog,
): Json[] {
  const responses: Json[] = [];
  let correlation: string | undefined;
  for (const cmd of commands) {
    if (!isObject(cmd)) {
      responses.push({
        command: 'Unknown command',
        error: 'Command not an object',
        ...(correlation !== undefined && { correlationData: correlation }),
      });
      continue;
    }
    const name = stringMember(cmd, 'command');
    if (typeof name !== 'string') {
      responses.push({
        command: 'Unknown command',
        error: 'Missing command',
        ...(correlation !== undefined && { correlationData: correlation }),
      });
      continue;
    }
    const corr = stringMember(cmd, 'correlationData');
    if (corr === false) {
      responses.push({ command: name, error: 'Invalid correlationData data type.' });
      break;
    }
    correlation = corr;
    const c: Ctx = { d, responses, effects, correlation, command: name, hash };
    const handler = BY_LOWER_NAME.get(name.toLowerCase());
    if (!handler) {
      reply(c, 'Unknown command');
      continue;
    }
    c.command = handler[0];
    log(handler[0]);
    try {
      handler[1](c, cmd);
    } catch (err) {
      if (!(err instanceof Refused)) throw err;
    }
  }
  return responses;
}
