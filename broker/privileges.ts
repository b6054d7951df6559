import { spawnSync } from 'node:child_process';
import { accessSync, chownSync, constants, existsSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { KeySpec } from './config/spec.js';
import type { BrokerConfig, BrokerTarget } from './config/types.js';

/**
 * Mosquitto's `user`: started as root, the broker binds its ports and opens its files, then
 * becomes this user (initgroups, setgid, setuid — src/security_default.c drop_privileges).
 * The default `mosquitto` falls back to `nobody` when no such user exists; any other missing
 * user stops the start. `user root` keeps root, with Mosquitto's warning.
 */
export const DEFAULT_USER = 'mosquitto';

export const userKey: KeySpec<BrokerTarget> = {
  key: 'user',
  usage: '<user name>',
  doc: 'When started as root: the user to become once listeners are bound and files are open (initgroups, setgid, setuid). State directories mqprobe creates at start (persistence_location, capture file and spool directories) are given to this user. A missing `mosquitto` user falls back to `nobody`, as in Mosquitto; any other missing user stops the start. `root` keeps root (with a warning).',
  default: DEFAULT_USER,
  scope: 'global',
  set(t, v) {
    v.count(1);
    t.config.user = v.word();
  },
};

interface Account {
  name: string;
  uid: number;
  gid: number;
}

/** The account through NSS (`getent`), so LDAP or sssd users resolve as they do for Mosquitto's getpwnam. */
function lookup(name: string): Account | undefined {
  const r = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  const f = r.status === 0 ? r.stdout.trim().split(':') : [];
  if (f.length < 4 || !/^\d+$/.test(f[2]) || !/^\d+$/.test(f[3])) return undefined;
  return { name: f[0], uid: Number(f[2]), gid: Number(f[3]) };
}

/** Directories mqprobe writes into after start: the snapshot's, and those the areas above name (capture files, spool). */
function stateDirs(config: BrokerConfig, more: readonly string[]): string[] {
  const dirs = new Set<string>(more);
  if (config.persistence) dirs.add(config.persistenceLocation);
  return [...dirs];
}

const isRoot = () => process.geteuid?.() === 0;

/**
 * The account a root process becomes: `user`, or `nobody` when the default `mosquitto` does not
 * exist (reported through `warn`); undefined when running as another user, for `user root`, or
 * when the user is missing.
 */
export function targetAccount(config: Pick<BrokerConfig, 'user'>, warn: (line: string) => void): Account | undefined {
  const name = target(config);
  if (!isRoot() || name === 'root') return undefined;
  const account = lookup(name);
  if (account || name !== DEFAULT_USER) return account;
  warn(`Warning: Unable to drop privileges to '${name}' because this user does not exist. Trying 'nobody' instead.`);
  return lookup('nobody');
}
const target = (config: Pick<BrokerConfig, 'user'>) => config.user ?? DEFAULT_USER;

/**
 * Before the broker starts: as root about to drop, create the state directories that do not
 * exist yet, so that they can be handed to the user afterwards. Returns the ones it created.
 */
export function createStateDirs(config: BrokerConfig, more: readonly string[] = []): string[] {
  if (!isRoot() || target(config) === 'root') return [];
  const created: string[] = [];
  for (const dir of stateDirs(config, more)) {
    if (existsSync(dir)) continue;
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    created.push(dir);
  }
  return created;
}

/** How deep under a state directory entries made at start are looked for (spool/queue/<sink>/segment). */
const STATE_TREE_DEPTH = 3;

/**
 * The entries under `dir` this process made as root before dropping (a sink's spool folder inside
 * an existing capture_spool_dir, made by the capture thread at start) go to the user: left to root,
 * every later write there failed with EACCES and the sink dropped what it should have spooled.
 * Entries that were there before the process started keep their owner.
 */
function giveMadeSinceStart(dir: string, account: Account, depth: number): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // missing or unreadable: reported by the writability check below
  }
  for (const name of names) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isSymbolicLink()) continue;
    const made = st.birthtimeMs > 0 ? st.birthtimeMs : st.ctimeMs;
    if (st.uid === 0 && made >= performance.timeOrigin) chownSync(path, account.uid, account.gid);
    if (st.isDirectory() && depth > 1) giveMadeSinceStart(path, account, depth - 1);
  }
}

/**
 * After listeners are bound and files are open: become `user`. Directories mqprobe created
 * (and the files it has written there since) go to that user; state directories that were there
 * before keep their owner (what mqprobe made inside them at start goes to the user), and one that
 * the user cannot write is reported (saves would fail).
 * Throws when the user cannot be become (the caller exits, as Mosquitto does).
 */
export function dropPrivileges(config: BrokerConfig, created: string[], log: Logger, more: readonly string[] = []): void {
  if (!isRoot()) return;
  if (target(config) !== 'root') {
    const account = targetAccount(config, (line) => log.error({ log_type: 'error' }, line));
    if (!account) throw new Error(`Error: Unable to drop privileges to '${target(config)}' because this user does not exist.`);
    for (const dir of created) chownSync(dir, account.uid, account.gid);
    // what is inside them, created ones included (everything in those was made since the start)
    for (const dir of stateDirs(config, more)) giveMadeSinceStart(dir, account, STATE_TREE_DEPTH);
    try {
      // POSIX-only, absent from @types/node 20's Process
      (process as unknown as { initgroups(user: string, gid: number): void }).initgroups(account.name, account.gid);
      process.setgid!(account.gid);
      process.setuid!(account.uid);
    } catch (err) {
      throw new Error(`Error dropping privileges to '${account.name}': ${(err as Error).message}.`);
    }
    for (const dir of stateDirs(config, more)) {
      try {
        accessSync(dir, constants.W_OK | constants.X_OK);
      } catch {
        log.error(
          { log_type: 'error' },
          `Error: ${dir} is not writable by user '${account.name}': files mqprobe writes there will fail (chown it, or set user).`,
        );
      }
    }
  }
  if (process.geteuid!() === 0 || process.getegid!() === 0)
    log.warn({ log_type: 'warning' }, 'Warning: mqprobe should not be run as root/administrator.');
}
