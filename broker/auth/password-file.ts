import { randomBytes, timingSafeEqual } from 'node:crypto';
import { ConfigError } from '../config/errors.js';
import { deriveHash, parseStoredHash, type StoredHash } from './password-hash.js';
import { readTextLines } from './text-file.js';

/** Mosquitto refuses usernames and password fields longer than this (MQTT string limit). */
export const MAX_FIELD_BYTES = 65_535;
/** How big a password file may be (read by the broker and by `mqprobe passwd`). */
export const PASSWORD_FILE_LIMITS = { what: 'password file', maxBytes: 64 * 1024 * 1024, maxLineBytes: 2 * MAX_FIELD_BYTES };

export type VerifyResult = 'ok' | 'bad-password' | 'unknown-user';

/** What is derived, and never accepted, when there is no password to derive. */
const STAND_IN = Buffer.from([0]);

/** A line of a password file that gives no user: the broker logs it and goes on without it. */
export interface SkippedLine {
  file: string;
  line: number;
  /** The user the line names, when it names one (that user cannot log in). */
  user?: string;
  reason: string;
}

/** One log line for a skipped line: file, line, user and reason, never the hash. */
export function describeSkippedLine(s: SkippedLine): string {
  return `${s.file}:${s.line}: ${s.user !== undefined ? `user "${s.user}" removed: ` : 'line ignored: '}${s.reason}`;
}

/**
 * A loaded Mosquitto password file. Verification derives as Mosquitto does (PBKDF2 of up to 200
 * iterations in place, longer ones on libuv's pool, argon2id on its own worker: password-hash.ts),
 * compares in constant time, and spends one derivation for unknown users too, so that response
 * time does not tell which usernames exist.
 */
export class PasswordFile {
  /** Stands in for unknown users: the parameters most users have, a random salt and hash. */
  private readonly decoy: StoredHash;

  constructor(
    readonly path: string,
    private readonly entries: ReadonlyMap<string, StoredHash>,
    /** Lines that gave no user (logged by the broker at load and reload). */
    readonly skipped: readonly SkippedLine[] = [],
  ) {
    const typical = mostCommon([...entries.values()]);
    this.decoy = { ...typical, salt: randomBytes(typical.salt.length), hash: randomBytes(typical.hash.length) };
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
    // a missing password still costs a derivation: answering faster would reveal the user exists.
    // hash-wasm refuses an empty argon2id password, so an empty one is refused after a stand-in's cost.
    const usable = password !== undefined && (password.length > 0 || stored.type !== 'argon2id');
    const derived = await deriveHash(stored, usable ? password : STAND_IN);
    const same = timingSafeEqual(derived, stored.hash);
    if (!entry) return 'unknown-user';
    return same && usable ? 'ok' : 'bad-password';
  }
}

/** What an unknown user costs: the hash type, parameters and sizes most users have. */
function mostCommon(hashes: StoredHash[]): StoredHash {
  const counts = new Map<string, number>();
  let best: StoredHash = { type: 'sha512-pbkdf2', iterations: 101, salt: Buffer.alloc(12), hash: Buffer.alloc(64) };
  let bestCount = 0;
  for (const h of hashes) {
    const key = JSON.stringify([
      h.type,
      h.type === 'sha512-pbkdf2' ? h.iterations : h.type === 'argon2id' ? h.params : 0,
      h.salt.length,
      h.hash.length,
    ]);
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    if (n > bestCount) [best, bestCount] = [h, n];
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
 * Reads a password file as written by `mosquitto_passwd` (2.1: `$argon2id$` and `$7$` with
 * 64-byte salts; 2.0: `$7$`; 1.x: `$6$`). A line that gives no usable user is skipped as
 * Mosquitto 2.0 does — that user is removed, the others keep working, and the line is listed
 * in `skipped` (for one log line each, never quoting the hash). What is not a password file
 * at all (unreadable, too big, NUL bytes, not UTF-8) and a user listed twice (which one
 * would count?) stop the load with an error naming file and line.
 */
export async function loadPasswordFile(path: string): Promise<PasswordFile> {
  const lines = await readTextLines(path, PASSWORD_FILE_LIMITS);
  const entries = new Map<string, StoredHash>();
  const firstLine = new Map<string, number>();
  const skipped: SkippedLine[] = [];
  for (const { line, text } of lines) {
    if (isPasswordFileComment(text)) continue;
    const skip = (reason: string, user?: string) => skipped.push({ file: path, line, user, reason });
    const parts = splitPasswordLine(text);
    if (!parts) {
      skip('expected user:hash');
      continue;
    }
    if (parts.user === '') {
      skip('empty username');
      continue;
    }
    if (Buffer.byteLength(parts.user) > MAX_FIELD_BYTES) {
      skip(`username is longer than ${MAX_FIELD_BYTES} bytes`);
      continue;
    }
    const earlier = firstLine.get(parts.user);
    if (earlier !== undefined)
      throw new ConfigError({ file: path, line }, undefined, `user "${parts.user}" is already defined on line ${earlier}`);
    firstLine.set(parts.user, line);
    const stored = parseStoredHash(parts.field);
    if (typeof stored === 'string') skip(stored, parts.user);
    else entries.set(parts.user, stored);
  }
  return new PasswordFile(path, entries, skipped);
}
