import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { ConfigError, type SourcePos } from './config/errors.js';
import { readTextLines } from './auth/text-file.js';

/** A token file named by a config key, with the line that names it (errors point there). */
export interface TokenFileRef {
  path: string;
  pos: SourcePos;
}

/** Shorter tokens are refused: a bearer token is a random secret, not a password someone types. */
export const MIN_TOKEN_CHARS = 16;
const LIMITS = { maxBytes: 16 * 1024 * 1024, maxLineBytes: 64 * 1024 };
const HASHED = /^sha256:([0-9a-f]{64})$/i;

/** The SHA-256 of a token, hex: how tokens are kept in memory and looked up. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * One token field: `sha256:<64 hex digits>` (the hash of the token, so the file holds no usable
 * secret) or the token itself. Returns its digest, or why it is refused (never quoting it).
 */
function fieldDigest(field: string): string | { error: string } {
  const hashed = HASHED.exec(field);
  if (hashed) return hashed[1].toLowerCase();
  if (field.toLowerCase().startsWith('sha256:')) return { error: 'a sha256: token hash must be 64 hexadecimal digits' };
  if (field.length < MIN_TOKEN_CHARS) return { error: `a token must be at least ${MIN_TOKEN_CHARS} characters` };
  if (/\s/.test(field)) return { error: 'a token cannot contain blanks' };
  return tokenDigest(field);
}

/** Reads the non-comment lines of a token file; errors name the key's line, the file and the line in it. */
async function tokenLines(key: string, ref: TokenFileRef): Promise<{ line: number; text: string }[]> {
  let lines;
  try {
    lines = await readTextLines(ref.path, { what: key, ...LIMITS });
  } catch (err) {
    throw new ConfigError(ref.pos, key, (err as Error).message);
  }
  const kept = lines.map((l) => ({ line: l.line, text: l.text.trim() })).filter((l) => l.text !== '' && !l.text.startsWith('#'));
  if (kept.length === 0) throw new ConfigError(ref.pos, key, `${ref.path} holds no token`);
  return kept;
}

/**
 * `http_token_file`: lines `<user>:<token>` or `<user>:sha256:<hex>` (`#` comments, blank lines).
 * Returns token digest → user. A token listed twice is an error (it could not name one user).
 */
export async function loadUserTokens(key: string, ref: TokenFileRef): Promise<Map<string, string>> {
  const tokens = new Map<string, string>();
  for (const { line, text } of await tokenLines(key, ref)) {
    const fail = (detail: string): never => {
      throw new ConfigError(ref.pos, key, `${ref.path}:${line}: ${detail}`);
    };
    const colon = text.indexOf(':');
    if (colon < 0) fail('expected <user>:<token>');
    const user = text.slice(0, colon).trim();
    if (user === '') fail('empty user name');
    const digest = fieldDigest(text.slice(colon + 1).trim());
    if (typeof digest !== 'string') return fail(`user "${user}": ${digest.error}`);
    if (tokens.has(digest)) fail(`user "${user}": this token is already given to user "${tokens.get(digest)}"`);
    tokens.set(digest, user);
  }
  return tokens;
}

/** `http_metrics_token_file`: one token (or `sha256:<hex>`) per line; several allow a rotation. Returns their digests. */
export async function loadTokenSet(key: string, ref: TokenFileRef): Promise<Set<string>> {
  const digests = new Set<string>();
  for (const { line, text } of await tokenLines(key, ref)) {
    const digest = fieldDigest(text);
    if (typeof digest !== 'string') throw new ConfigError(ref.pos, key, `${ref.path}:${line}: ${digest.error}`);
    digests.add(digest);
  }
  return digests;
}

/**
 * The deprecated `http_sse_token_file`: the whole file, surrounding whitespace ignored, is one token.
 * Synchronous: the key checks it at config load, and the broker reads it again at start.
 */
export function readLegacySseToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const token = text.trim();
  if (token === '') throw new Error(`${file} is empty`);
  return token;
}

/** The HTTP listener's token files (`http_token_file`, `http_metrics_token_file`). */
export interface HttpAuthConfig {
  /** `http_token_file`: bearer tokens mapped to broker users. */
  userTokens?: TokenFileRef;
  /** `http_metrics_token_file`: bearer tokens for /metrics and /healthz. */
  metricsTokens?: TokenFileRef;
}
