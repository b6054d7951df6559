import { createHash, pbkdf2, pbkdf2Sync, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { MOSQUITTO_ARGON2, argon2idDerive, formatArgon2id, parseArgon2id, type Argon2Params } from './argon2.js';
import { decodeBase64 } from './base64.js';

const pbkdf2Async = promisify(pbkdf2);
/**
 * PBKDF2 derivations up to this many iterations run in place, as Mosquitto runs every one: at
 * Mosquitto 2.0's 101 (about 55 µs) the hand-over to libuv's thread pool and back costs a storm of
 * CONNECTs more than the work; longer ones (2.1's 1,000: about 0.5 ms) go to the pool.
 */
const PBKDF2_IN_PLACE_MAX = 200;

/** Mosquitto 2.0 writes 12-byte salts; Mosquitto 2.1 writes 64-byte salts and reads both. */
export const SALT_BYTES = 12;
export const MOSQUITTO_21_SALT_BYTES = 64;
export const HASH_BYTES = 64;
/** `mosquitto_passwd` 2.0's PBKDF2 iteration count (2.1 writes 1000). */
export const DEFAULT_ITERATIONS = 101;
/**
 * The highest PBKDF2 iteration count mqprobe accepts, in a password file and from
 * `mqprobe passwd -I`. Every CONNECT with a username costs one derivation on libuv's thread
 * pool; an absurd count in a file (or a typo) would turn each CONNECT into seconds of CPU.
 * One million is about five times OWASP's 2023 advice for PBKDF2-HMAC-SHA512 (210,000).
 */
export const MAX_ITERATIONS = 1_000_000;

export type HashType = 'sha512' | 'sha512-pbkdf2' | 'argon2id';

/** A decoded password file hash: `$6$`, `$7$` or `$argon2id$`. */
export type StoredHash =
  | { type: 'sha512'; salt: Buffer; hash: Buffer }
  | { type: 'sha512-pbkdf2'; iterations: number; salt: Buffer; hash: Buffer }
  | { type: 'argon2id'; params: Argon2Params; salt: Buffer; hash: Buffer };

const SHA_RE = /^\$6\$([^$]+)\$([^$]+)$/;
const PBKDF2_RE = /^\$7\$(\d+)\$([^$]+)\$([^$]+)$/;

/**
 * Decodes the hash field of a password file line (Mosquitto 2.1's password_common.c formats).
 * Returns a reason, never quoting the field, when mqprobe cannot use it.
 */
export function parseStoredHash(field: string): StoredHash | string {
  if (field.startsWith('$argon2id$')) {
    const a = parseArgon2id(field);
    return typeof a === 'string' ? a : { type: 'argon2id', ...a };
  }
  const pb = PBKDF2_RE.exec(field);
  const sh = pb ? null : SHA_RE.exec(field);
  if (!pb && !sh) {
    if (/^\$[67]\$/.test(field))
      return `malformed $${field[1]}$ hash (expected ${field[1] === '7' ? '$7$<iterations>$<salt>$<hash>' : '$6$<salt>$<hash>'}, base64)`;
    if (field.startsWith('$')) return 'unsupported hash type (mqprobe reads $6$, $7$ and $argon2id$ hashes, as Mosquitto 2.1 does)';
    return 'password is not hashed (hash a plain-text file with `mqprobe passwd -U FILE`)';
  }
  const [saltB64, hashB64] = pb ? [pb[2], pb[3]] : [sh![1], sh![2]];
  const salt = decodeBase64(saltB64);
  const hash = decodeBase64(hashB64);
  if (!salt || !hash) return `malformed $${field[1]}$ hash (${salt ? 'hash' : 'salt'} is not valid base64)`;
  if (salt.length !== SALT_BYTES && salt.length !== MOSQUITTO_21_SALT_BYTES)
    return `salt must be ${SALT_BYTES} or ${MOSQUITTO_21_SALT_BYTES} bytes, found ${salt.length}`;
  if (hash.length !== HASH_BYTES) return `hash must be ${HASH_BYTES} bytes, found ${hash.length}`;
  if (sh) return { type: 'sha512', salt, hash };
  const iterations = Number(pb![1]);
  if (iterations < 1) return 'PBKDF2 iteration count must be at least 1';
  if (iterations > MAX_ITERATIONS) return `PBKDF2 iteration count is above mqprobe's limit of ${MAX_ITERATIONS}`;
  return { type: 'sha512-pbkdf2', iterations, salt, hash };
}

/** Derives the hash of a password the way Mosquitto does for the stored hash's type and parameters. */
export async function deriveHash(stored: StoredHash, password: Buffer): Promise<Buffer> {
  switch (stored.type) {
    case 'sha512':
      return createHash('sha512').update(password).update(stored.salt).digest();
    case 'sha512-pbkdf2':
      if (stored.iterations <= PBKDF2_IN_PLACE_MAX) return pbkdf2Sync(password, stored.salt, stored.iterations, HASH_BYTES, 'sha512');
      return pbkdf2Async(password, stored.salt, stored.iterations, HASH_BYTES, 'sha512');
    case 'argon2id':
      return argon2idDerive(password, stored.salt, stored.params, stored.hash.length);
  }
}

/** Formats a hash as `mosquitto_passwd` writes it. */
export function formatStoredHash(h: StoredHash): string {
  const tail = `${h.salt.toString('base64')}$${h.hash.toString('base64')}`;
  if (h.type === 'argon2id') return formatArgon2id(h);
  return h.type === 'sha512' ? `$6$${tail}` : `$7$${h.iterations}$${tail}`;
}

/**
 * Hashes a password into the field `mosquitto_passwd` writes after `user:` — by default
 * `$7$` as Mosquitto 2.0 writes it (PBKDF2-HMAC-SHA512, 12-byte salt, read by 2.0 and 2.1),
 * `$6$` for Mosquitto 1.x, or `$argon2id$` as Mosquitto 2.1 writes it (m=47104 KiB, t=1, p=1,
 * 64-byte salt and hash; read by 2.1 only).
 */
export async function hashPassword(password: string, iterations = DEFAULT_ITERATIONS, type: HashType = 'sha512-pbkdf2'): Promise<string> {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
    throw new RangeError(`iterations must be an integer from 1 to ${MAX_ITERATIONS}`);
  }
  if (type === 'argon2id' && password === '') throw new RangeError('argon2id cannot hash an empty password (hash-wasm refuses it)');
  const { saltBytes, hashBytes, ...params } = MOSQUITTO_ARGON2;
  const empty = Buffer.alloc(0);
  const spec: StoredHash =
    type === 'argon2id'
      ? { type, params, salt: randomBytes(saltBytes), hash: Buffer.alloc(hashBytes) }
      : type === 'sha512'
        ? { type, salt: randomBytes(SALT_BYTES), hash: empty }
        : { type, iterations, salt: randomBytes(SALT_BYTES), hash: empty };
  return formatStoredHash({ ...spec, hash: await deriveHash(spec, Buffer.from(password, 'utf8')) });
}
