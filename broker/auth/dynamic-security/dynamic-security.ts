import { pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { deriveHash } from '../password-hash.js';
import { isObject, parseCJson, type Json } from './cjson.js';
import { clientVerdict, type DynAccess } from './acl-check.js';
import { runCommands, type Effects } from './commands.js';
import { HASH_BYTES, SALT_BYTES, loadDynsecFile, saveDynsecFile, type DynsecData } from './file.js';
import type { StoredPassword } from './model.js';

const pbkdf2Async = promisify(pbkdf2);

/** The topic the plugin takes commands on, and the one it answers on. */
export const CONTROL_TOPIC = '$CONTROL/dynamic-security/v1';
export const RESPONSE_TOPIC = '$CONTROL/dynamic-security/v1/response';
/** Iterations of a password set through the control topic (the plugin's PW_DEFAULT_ITERATIONS). */
const NEW_PASSWORD_ITERATIONS = 101;

export type DynAuthResult = 'ok' | 'refused' | 'defer';

/** The answer to one control message: the response payload, and who must reconnect. */
export interface ControlResult {
  response: Buffer;
  kickUsers: Set<string>;
  kickAnonymous: boolean;
  /** Why the file could not be written, when it could not. */
  saveError?: string;
}

function newPassword(password: string): StoredPassword {
  const salt = randomBytes(SALT_BYTES);
  return {
    salt,
    iterations: NEW_PASSWORD_ITERATIONS,
    hash: pbkdf2Sync(Buffer.from(password, 'utf8'), salt, NEW_PASSWORD_ITERATIONS, HASH_BYTES, 'sha512'),
  };
}

/**
 * Mosquitto's dynamic security plugin (2.0), implemented by mqprobe: clients with PBKDF2-SHA512
 * passwords, groups, roles and their ACLs from the plugin's JSON file, the `$CONTROL/dynamic-security/v1`
 * API, and the file written back after every change (FILE.new renamed over FILE, as the plugin does).
 */
export class DynamicSecurity {
  private constructor(
    readonly path: string,
    private readonly d: DynsecData,
    /** Entries of the file the plugin would skip too, one line each for the log. */
    readonly skipped: string[],
  ) {}

  static load(path: string): DynamicSecurity {
    const { data, skipped } = loadDynsecFile(path);
    return new DynamicSecurity(path, data, skipped);
  }

  /**
   * The plugin's basic-auth callback: 'defer' when there is no username or password or no such
   * client or it has no password (Mosquitto then refuses, or lets an anonymous client in under
   * allow_anonymous); 'refused' for a disabled client, a client id other than the one the client
   * is bound to, or a wrong password.
   */
  async authenticate(username: string | undefined, password: Buffer | undefined, clientId: string | undefined): Promise<DynAuthResult> {
    if (username === undefined || password === undefined) return 'defer';
    const client = this.d.clients.get(username);
    if (!client) return 'defer';
    if (client.disabled) return 'refused';
    if (client.clientid !== undefined && client.clientid !== clientId) return 'refused';
    const pw = client.password;
    if (!pw) return 'defer';
    // the plugin hashes the password as a C string: it ends at the first zero byte
    const zero = password.indexOf(0);
    const plain = zero < 0 ? password : password.subarray(0, zero);
    if ('text' in pw) return timingSafeEqual(await deriveHash(pw.stored, plain), pw.stored.hash) ? 'ok' : 'refused';
    const hash = await pbkdf2Async(plain, pw.salt, pw.iterations, HASH_BYTES, 'sha512');
    return timingSafeEqual(hash, pw.hash) ? 'ok' : 'refused';
  }

  /**
   * The plugin's ACL check for a client (undefined username: anonymous). Roles decide first; then
   * the default access, which never opens `$CONTROL` topics. A username the plugin does not know
   * is denied everything (its check defers, and Mosquitto denies what every plugin defers).
   */
  allows(username: string | undefined, topic: string, access: DynAccess, clientId?: string): boolean {
    const client = username === undefined ? undefined : this.d.clients.get(username);
    if (username !== undefined && !client) return false;
    const verdict = clientVerdict(client, this.d.anonymousGroup, topic, access, { username, clientId });
    if (verdict !== undefined) return verdict;
    const dflt = { write: 'publishClientSend', read: 'publishClientReceive', subscribe: 'subscribe', unsubscribe: 'unsubscribe' } as const;
    return this.d.defaultAccess[dflt[access]] && !topic.startsWith('$CONTROL');
  }

  /** The ACL file's interface. */
  check(who: { username?: string; clientId?: string }, topic: string, access: DynAccess): boolean {
    return this.allows(who.username, topic, access, who.clientId);
  }

  /**
   * One message on the control topic (dynsec_control_callback): parses it, runs its commands,
   * saves the file when something changed, and returns the `{"responses":[…]}` payload.
   * `log` gets one line per command, naming the command and never its arguments.
   */
  control(payload: Buffer, log: (command: string) => void): ControlResult {
    const effects: Effects = { kickUsers: new Set(), kickAnonymous: false, changed: false };
    const answer = (responses: Json[]): ControlResult => ({ response: Buffer.from(JSON.stringify({ responses })), ...effects });
    let tree: Json;
    try {
      tree = parseCJson(payload.toString('utf8'));
    } catch {
      return answer([{ command: 'Unknown command', error: 'Payload not valid JSON' }]);
    }
    const commands = isObject(tree) ? (Object.entries(tree).find(([k]) => k.toLowerCase() === 'commands')?.[1] ?? undefined) : undefined;
    if (!Array.isArray(commands)) return answer([{ command: 'Unknown command', error: 'Invalid/missing commands' }]);
    const responses = runCommands(this.d, commands, effects, newPassword, log);
    let saveError: string | undefined;
    try {
      if (effects.changed) saveDynsecFile(this.path, this.d);
    } catch (err) {
      // as the plugin: the change stands in memory and the commands are answered; the next change tries again
      saveError = `cannot save dynamic security file ${this.path}: ${(err as Error).message}`;
    }
    return { ...answer(responses), saveError };
  }
}
