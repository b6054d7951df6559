import { createHash, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { ConfigError } from '../config/errors.js';
import { readTextLines } from './text-file.js';

const pbkdf2Async = promisify(pbkdf2);

/** What `mosquitto_passwd` writes (Mosquitto 2.0: password_mosq.h). */
export const SALT_BYTES = 12;
export const HASH_BYTES = 64;
export const DEFAULT_ITERATIONS = 101;
/**
 * The highest PBKDF2 iteration count mqprobe accepts, in a password file and from
 * `mqprobe passwd -I`. Every CONNECT with a username costs one derivation on libuv's thread
 * pool; an absurd count in a file (or a typo) would turn each CONNECT into seconds of CPU.
 * One million is about five times OWASP's 2023 advice for PBKDF2-HMAC-SHA512 (210,000).
 */
export const MAX_ITERATIONS = 1_000_000;
/** Mosquitto refuses usernames and password fields longer than this (MQTT string limit). */
export const MAX_FIELD_BYTES = 65_535;
/** How big a password file may be (read by the broker and by `mqprobe passwd`). */
export const PASSWORD_FILE_LIMITS = { what: 'password file', maxBytes: 64 * 1024 * 1024, maxLineBytes: 2 * MAX_FIELD_BYTES };

export type HashType = 'sha512' | 'sha512-pbkdf2';
export type VerifyResult = 'ok' | 'bad-password' | 'unknown-user';

/** A decoded `$6$`/`$7$` hash. */
export interface StoredHash {
  type: HashType;
  /** PBKDF2 iterations; 1 for `$6$` (one SHA-512 over password then salt). */
  iterations: number;
  salt: Buffer;
  hash: Buffer;
}

const B64 = '[A-Za-z0-9+/]+={0,2}';
const SHA512_RE = new RegExp(`^\\$6\\$(${B64})\\$(${B64})$`);
const PBKDF2_RE = new RegExp(`^\\$7\\$(\\d+)\\$(${B64})\\$(${B64})$`);

/**
 * Decodes the hash field of a password file line. Returns a reason (never quoting the
 * field) when it is not a `$6$`/`$7$` hash with a 12-byte salt and a 64-byte hash.
 */
export function parseStoredHash(field: string): StoredHash | string {
  let type: HashType;
  let iterations = 1;
  let saltB64: string;
  let hashB64: string;
  const pb = PBKDF2_RE.exec(field);
  const sh = pb ? null : SHA512_RE.exec(field);
  if (pb) {
    type = 'sha512-pbkdf2';
    iterations = Number(pb[1]);
    [saltB64, hashB64] = [pb[2], pb[3]];
    if (iterations < 1) return 'PBKDF2 iteration count must be at least 1';
    if (iterations > MAX_ITERATIONS) return `PBKDF2 iteration count is above mqprobe's limit of ${MAX_ITERATIONS}`;
  } else if (sh) {
    type = 'sha512';
    [saltB64, hashB64] = [sh[1], sh[2]];
  } else if (/^\$[67]\$/.test(field)) {
    return `malformed $${field[1]}$ hash (expected ${field[1] === '7' ? '$7$<iterations>$<salt>$<hash>' : '$6$<salt>$<hash>'}, base64)`;
  } else if (field.startsWith('$')) {
    return 'unsupported hash type (mqprobe reads $6$ and $7$ hashes, as Mosquitto 2.0 does)';
  } else {
    return 'password is not hashed (hash a plain-text file with `mqprobe passwd -U FILE`)';
  }
  const salt = Buffer.from(saltB64, 'base64');
  const hash = Buffer.from(hashB64, 'base64');
  if (salt.length !== SALT_BYTES) return `salt must be ${SALT_BYTES} bytes, found ${salt.length}`;
  if (hash.length !== HASH_BYTES) return `hash must be ${HASH_BYTES} bytes, found ${hash.length}`;
  return { type, iterations, salt, hash };
}

/** Derives the hash of a password the way Mosquitto's pw__hash does. */
async function derive(stored: Pick<StoredHash, 'type' | 'iterations' | 'salt'>, password: Buffer): Promise<Buffer> {
  if (stored.type === 'sha512') return createHash('sha512').update(password).update(stored.salt).digest();
  return pbkdf2Async(password, stored.salt, stored.iterations, HASH_BYTES, 'sha512');
}

/** Formats a hash as `mosquitto_passwd` writes it. */
export function formatStoredHash(h: StoredHash): string {
  const tail = `${h.salt.toString('base64')}$${h.hash.toString('base64')}`;
  return h.type === 'sha512' ? `$6$${tail}` : `$7$${h.iterations}$${tail}`;
}

/**
 * Hashes a password into the field `mosquitto_passwd` writes after `user:` — by default
 * `$7$` (PBKDF2-HMAC-SHA512, 12-byte random salt, 64-byte hash), or `$6$` for Mosquitto 1.x.
 */
export async function hashPassword(password: string, iterations = DEFAULT_ITERATIONS, type: HashType = 'sha512-pbkdf2'): Promise<string> {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
    throw new RangeError(`iterations must be an integer from 1 to ${MAX_ITERATIONS}`);
  }
  const params = { type, iterations: type === 'sha512' ? 1 : iterations, salt: randomBytes(SALT_BYTES) };
  return formatStoredHash({ ...params, hash: await derive(params, Buffer.from(password, 'utf8')) });
}

/**
 * A loaded Mosquitto password file. Verification runs PBKDF2 on libuv's thread pool (never
 * on the event loop), compares in constant time, and spends one derivation for unknown
 * users too, so that response time does not tell which usernames exist.
 */
export class PasswordFile {
  /** Stands in for unknown users: the iteration count most users have, a random salt and hash. */
  private readonly decoy: StoredHash;

  constructor(
    readonly path: string,
    private readonly entries: ReadonlyMap<string, StoredHash>,
  ) {
    this.decoy = { ...typicalParams([...entries.values()]), salt: randomBytes(SALT_BYTES), hash: randomBytes(HASH_BYTES) };
  }

  has(user: string): boolean {
    return this.entries.has(user);
  }

  users(): string[] {
    return [...this.entries.keys()];
  }

  async verify(user: string, password: Buffer | undefined): Promise<VerifyResult> {
    const entry = this.entries.get(user);
    const stored = entry ?? this.decoy;
    // a missing password still costs a derivation: answering faster would reveal the user exists
    const derived = await derive(stored, password ?? Buffer.alloc(0));
    const same = timingSafeEqual(derived, stored.hash);
    if (!entry) return 'unknown-user';
    return same && password !== undefined ? 'ok' : 'bad-password';
  }
}

function typicalParams(hashes: StoredHash[]): Pick<StoredHash, 'type' | 'iterations'> {
  const counts = new Map<string, number>();
  let best: Pick<StoredHash, 'type' | 'iterations'> = { type: 'sha512-pbkdf2', iterations: DEFAULT_ITERATIONS };
  let bestCount = 0;
  for (const h of hashes) {
    const key = `${h.type}:${h.iterations}`;
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    if (n > bestCount) [best, bestCount] = [{ type: h.type, iterations: h.iterations }, n];
  }
  return best;
}

/** One `user:hash` line split as Mosquitto splits it (blanks around both fields trimmed). */
export function splitPasswordLine(text: string): { user: string; field: string } | undefined {
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { user: text.slice(0, colon).trim(), field: text.slice(colon + 1).trim() };
}

/** True for lines Mosquitto skips: `#` comments and blank lines. */
export function isPasswordFileComment(text: string): boolean {
  return text.startsWith('#') || text.trim() === '';
}

/**
 * Reads a password file as written by `mosquitto_passwd` (Mosquitto 2.0: `$7$`, Mosquitto
 * 1.x: `$6$`). Unlike Mosquitto, which logs and drops a malformed entry, a malformed line is
 * an error naming file and line (and never quoting the hash), so that a typo cannot silently
 * lock a user out, and a user listed twice is an error rather than a guess.
 */
export async function loadPasswordFile(path: string): Promise<PasswordFile> {
  const lines = await readTextLines(path, PASSWORD_FILE_LIMITS);
  const entries = new Map<string, StoredHash>();
  const firstLine = new Map<string, number>();
  for (const { line, text } of lines) {
    if (isPasswordFileComment(text)) continue;
    const where = { file: path, line };
    const parts = splitPasswordLine(text);
    if (!parts) throw new ConfigError(where, undefined, 'expected user:hash');
    if (parts.user === '') throw new ConfigError(where, undefined, 'empty username');
    if (Buffer.byteLength(parts.user) > MAX_FIELD_BYTES) throw new ConfigError(where, undefined, `username is longer than ${MAX_FIELD_BYTES} bytes`);
    const stored = parseStoredHash(parts.field);
    if (typeof stored === 'string') throw new ConfigError(where, undefined, `user "${parts.user}": ${stored}`);
    const earlier = firstLine.get(parts.user);
    if (earlier !== undefined) throw new ConfigError(where, undefined, `user "${parts.user}" is already defined on line ${earlier}`);
    firstLine.set(parts.user, line);
    entries.set(parts.user, stored);
  }
  return new PasswordFile(path, entries);
}
