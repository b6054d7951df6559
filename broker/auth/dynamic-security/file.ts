import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { ConfigError } from '../../config/errors.js';
import { decodeBase64 } from '../base64.js';
import { parseStoredHash } from '../password-hash.js';
import {
  boolMember,
  intMember,
  isObject,
  member,
  parseCJson,
  printCJson,
  stringMember,
  strcmp,
  type Json,
  type JsonObject,
} from './cjson.js';
import {
  ACL_TYPES,
  DEFAULT_ACCESS_TYPES,
  addRoleRef,
  emptyAcls,
  insertAcl,
  joinGroup,
  type Acl,
  type DefaultAccessType,
  type DynClient,
  type Group,
  type Role,
  type RoleRef,
} from './model.js';

/** The plugin's salt and hash sizes (PBKDF2-HMAC-SHA512). */
export const SALT_BYTES = 12;
export const HASH_BYTES = 64;
/** The biggest file mqprobe reads (the plugin reads any size; 64 MiB of JSON is far beyond any real setup). */
const MAX_FILE_BYTES = 64 * 1024 * 1024;

export interface DynsecData {
  defaultAccess: Record<DefaultAccessType, boolean>;
  clients: Map<string, DynClient>;
  groups: Map<string, Group>;
  roles: Map<string, Role>;
  anonymousGroup?: Group;
}

export function emptyData(): DynsecData {
  return {
    defaultAccess: { publishClientSend: false, publishClientReceive: false, subscribe: false, unsubscribe: false },
    clients: new Map(),
    groups: new Map(),
    roles: new Map(),
  };
}

/**
 * A file that cannot be used: the broker does not start (Mosquitto's plugin logs an error and
 * starts with no clients, roles or groups at all). A config error: the CLI exits with code 3.
 */
export class DynsecFileError extends ConfigError {
  constructor(detail: string) {
    super(undefined, undefined, detail);
  }
}

/** Reads ACL entries of one type from an `acls` array, skipping malformed ones (dynsec_roles__acl_load). */
export function readAcls(list: Json[], type: (typeof ACL_TYPES)[number]): Acl[] {
  const acls: Acl[] = [];
  for (const j of list) {
    if (!isObject(j)) continue;
    const t = member(j, 'acltype');
    if (typeof t !== 'string' || t.toLowerCase() !== type.toLowerCase()) continue;
    const topic = stringMember(j, 'topic');
    if (typeof topic !== 'string') continue;
    const acl = { topic, priority: intMember(j, 'priority', 0), allow: boolMember(j, 'allow', false) };
    // the plugin keys ACLs by topic: a second one with the same topic is not found by later look-ups
    if (!acls.some((a) => a.topic === topic)) insertAcl(acls, acl);
  }
  return acls;
}

/** Role, group and client references from a `roles` array of the file (unknown roles are dropped, as the plugin drops them). */
function readRoleRefs(j: Json | undefined, roles: Map<string, Role>): RoleRef[] {
  const refs: RoleRef[] = [];
  if (!Array.isArray(j)) return refs;
  for (const r of j) {
    if (!isObject(r)) continue;
    const name = stringMember(r, 'rolename');
    const role = typeof name === 'string' ? roles.get(name) : undefined;
    if (role) addRoleRef(refs, role, intMember(r, 'priority', -1));
  }
  return refs;
}

function optionalText(j: JsonObject, name: string): string | undefined {
  const v = stringMember(j, name);
  return typeof v === 'string' ? v : undefined;
}

/**
 * A client's password: Mosquitto 2.1's `encoded_password` when present (a hash it cannot use leaves
 * the client without a password, as in 2.1), else 2.0's `password`/`salt`/`iterations`.
 */
function readPassword(j: JsonObject, username: string, skipped: string[]): DynClient['password'] | 'invalid' {
  const encoded = stringMember(j, 'encoded_password');
  if (typeof encoded === 'string') {
    const stored = parseStoredHash(encoded);
    if (typeof stored !== 'string') return { text: encoded, stored };
    skipped.push(`client "${username}": encoded_password cannot be used (${stored}): that client cannot log in`);
    return undefined;
  }
  const salt = member(j, 'salt');
  const hash = member(j, 'password');
  const iterations = member(j, 'iterations');
  if (typeof salt !== 'string' || typeof hash !== 'string' || typeof iterations !== 'number') return undefined;
  const s = decodeBase64(salt);
  const h = decodeBase64(hash);
  if (Math.trunc(iterations) < 1 || s?.length !== SALT_BYTES || h?.length !== HASH_BYTES) return 'invalid';
  return { salt: s, hash: h, iterations: Math.trunc(iterations) };
}

/**
 * Parses a dynamic-security.json as the plugin loads it: roles first, then clients, then groups
 * with their members. Entries the plugin skips (no name, wrong types, a bad salt or hash) are
 * skipped here too, and each is returned as one line for the log; a member that is not an array
 * where the plugin needs one, or text that is not JSON, is an error.
 */
export function parseDynsecFile(text: string, path: string): { data: DynsecData; skipped: string[] } {
  const data = emptyData();
  const skipped: string[] = [];
  if (text.length === 0) return { data, skipped }; // an empty file is an empty configuration, as for the plugin
  let tree: Json;
  try {
    tree = parseCJson(text);
  } catch (err) {
    throw new DynsecFileError(`dynamic security file ${path} is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(tree)) throw new DynsecFileError(`dynamic security file ${path} must hold a JSON object`);
  const list = (name: string): Json[] => {
    const v = member(tree, name);
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw new DynsecFileError(`dynamic security file ${path}: "${name}" must be an array`);
    return v;
  };
  const access = member(tree, 'defaultACLAccess');
  if (isObject(access)) for (const k of DEFAULT_ACCESS_TYPES) data.defaultAccess[k] = boolMember(access, k, false);

  list('roles').forEach((j, i) => {
    const name = isObject(j) ? stringMember(j, 'rolename') : undefined;
    if (!isObject(j) || typeof name !== 'string') return void skipped.push(`role #${i + 1} has no rolename string: skipped`);
    const acls = member(j, 'acls');
    const role: Role = {
      rolename: name,
      textname: optionalText(j, 'textname'),
      textdescription: optionalText(j, 'textdescription'),
      acls: emptyAcls(),
    };
    if (Array.isArray(acls)) for (const t of ACL_TYPES) role.acls[t] = readAcls(acls, t);
    if (!data.roles.has(name)) data.roles.set(name, role);
  });
  list('clients').forEach((j, i) => {
    const name = isObject(j) ? stringMember(j, 'username') : undefined;
    if (!isObject(j) || typeof name !== 'string') return void skipped.push(`client #${i + 1} has no username string: skipped`);
    const password = readPassword(j, name, skipped);
    if (password === 'invalid')
      return void skipped.push(`client "${name}" has an unusable salt, password hash or iteration count: skipped`);
    const clientid = optionalText(j, 'clientid');
    const client: DynClient = {
      username: name,
      clientid,
      textname: optionalText(j, 'textname'),
      textdescription: optionalText(j, 'textdescription'),
      disabled: boolMember(j, 'disabled', false),
      password,
      roles: readRoleRefs(member(j, 'roles'), data.roles),
      groups: [],
    };
    if (!data.clients.has(name)) data.clients.set(name, client);
  });
  list('groups').forEach((j, i) => {
    const name = isObject(j) ? member(j, 'groupname') : undefined;
    if (!isObject(j) || typeof name !== 'string') return void skipped.push(`group #${i + 1} has no groupname string: skipped`);
    const group: Group = {
      groupname: name,
      textname: optionalText(j, 'textname'),
      textdescription: optionalText(j, 'textdescription'),
      roles: readRoleRefs(member(j, 'roles'), data.roles),
      clients: [],
    };
    if (data.groups.has(name)) return;
    data.groups.set(name, group);
    const members = member(j, 'clients');
    if (!Array.isArray(members)) return;
    for (const m of members) {
      const username = isObject(m) ? stringMember(m, 'username') : undefined;
      const client = typeof username === 'string' ? data.clients.get(username) : undefined;
      if (client) joinGroup(client, group, intMember(m as JsonObject, 'priority', -1));
    }
  });
  const anonymous = member(tree, 'anonymousGroup');
  if (typeof anonymous === 'string') data.anonymousGroup = data.groups.get(anonymous);
  return { data, skipped };
}

/** Reads the file; a missing or unreadable file is an error naming it. */
export function loadDynsecFile(path: string): { data: DynsecData; skipped: string[] } {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new DynsecFileError(`dynamic security file ${path} cannot be read: ${(err as Error).message}`);
  }
  if (buf.length > MAX_FILE_BYTES) throw new DynsecFileError(`dynamic security file ${path} is larger than ${MAX_FILE_BYTES} bytes`);
  return parseDynsecFile(buf.toString('utf8'), path);
}

const sortedValues = <T>(m: Map<string, T>): T[] => [...m.entries()].sort(([a], [b]) => strcmp(a, b)).map(([, v]) => v);

/** Present text fields, in the plugin's member order. */
function texts(x: { textname?: string; textdescription?: string }): JsonObject {
  return {
    ...(x.textname !== undefined && { textname: x.textname }),
    ...(x.textdescription !== undefined && { textdescription: x.textdescription }),
  };
}

function passwordJson(p: NonNullable<DynClient['password']>): JsonObject {
  if ('text' in p) return { encoded_password: p.text };
  return { password: p.hash.toString('base64'), salt: p.salt.toString('base64'), iterations: p.iterations };
}

export function roleRefsJson(refs: readonly RoleRef[]): Json[] {
  return refs.map((r) => ({ rolename: r.role.rolename, ...(r.priority !== -1 && { priority: r.priority }) }));
}

export function aclsJson(role: Role): Json[] {
  return ACL_TYPES.flatMap((t) => role.acls[t].map((a) => ({ acltype: t, topic: a.topic, priority: a.priority, allow: a.allow })));
}

export function roleJson(role: Role): JsonObject {
  return { rolename: role.rolename, ...texts(role), acls: aclsJson(role) };
}

/** The file as the plugin writes it (dynsec__config_save): same members, same order. */
export function dynsecFileJson(d: DynsecData): JsonObject {
  const clients = sortedValues(d.clients).map((c) => ({
    username: c.username,
    ...(c.clientid !== undefined && { clientid: c.clientid }),
    ...texts(c),
    ...(c.disabled && { disabled: true }),
    roles: roleRefsJson(c.roles),
    ...(c.password && passwordJson(c.password)),
  }));
  const groups = sortedValues(d.groups).map((g) => ({
    groupname: g.groupname,
    ...texts(g),
    roles: roleRefsJson(g.roles),
    clients: g.clients.map((m) => ({ username: m.client.username, ...(m.priority !== -1 && { priority: m.priority }) })),
  }));
  return {
    defaultACLAccess: { ...d.defaultAccess },
    clients,
    groups,
    ...(d.anonymousGroup && { anonymousGroup: d.anonymousGroup.groupname }),
    roles: sortedValues(d.roles).map(roleJson),
  };
}

/** Writes FILE.new and renames it over FILE, as the plugin does: a reader sees the old file or the new one. */
export function saveDynsecFile(path: string, d: DynsecData): void {
  const tmp = `${path}.new`;
  writeFileSync(tmp, printCJson(dynsecFileJson(d)), { mode: 0o600 });
  renameSync(tmp, path);
}
