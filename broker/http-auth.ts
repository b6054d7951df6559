import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { Counter } from 'prom-client';
import type { KeySpec } from './config/spec.js';
import type { ListenerConfig } from './config/types.js';
import type { Access } from './engine/access.js';
import type { BrokerProbe } from './probe.js';
import { RefusalReporter } from './http/refusals.js';
import { loadTokenSet, loadUserTokens, readLegacySseToken, tokenDigest, type HttpAuthConfig, type TokenFileRef } from './http-tokens.js';

/** The `http_*_token_file` keys. */

interface HttpAuthTarget {
  config: { httpAuth?: HttpAuthConfig };
}
const ref = (v: { line: { file: string; line: number } }, path: string): TokenFileRef => ({
  path,
  pos: { file: v.line.file, line: v.line.line },
});

/** Global keys, next to `http_listener`. The files are read (and checked) when the broker starts and on SIGHUP. */
export const httpAuthKeys: KeySpec<HttpAuthTarget>[] = [
  {
    key: 'http_token_file',
    usage: '<file>',
    doc: "Bearer tokens of the HTTP listener's clients (`/sse`): lines `<user>:<token>` or `<user>:sha256:<hex of the token's SHA-256>`; a request with `Authorization: Bearer <token>` (or `?access_token=` on /sse) acts as that broker user, under its ACL (docs/security.md).",
    scope: 'global',
    set(t, v) {
      (t.config.httpAuth ??= {}).userTokens = ref(v, v.count(1).path());
    },
  },
  {
    key: 'http_metrics_token_file',
    usage: '<file>',
    doc: '`/metrics` and `/healthz` then require `Authorization: Bearer <token>` with a token of this file (one per line, or `sha256:<hex>`); without it they are open.',
    scope: 'global',
    set(t, v) {
      (t.config.httpAuth ??= {}).metricsTokens = ref(v, v.count(1).path());
    },
  },
];

/** Who an HTTP request acts as: a broker user, or the anonymous user (`username` undefined). */
export interface HttpIdentity {
  username?: string;
  /** How it proved it: HTTP Basic, a `http_token_file` token, the deprecated `http_sse_token_file` token, or nothing. */
  method: 'basic' | 'bearer' | 'sse-token' | 'anonymous';
}

export type HttpRefusal = { status: 400 | 401; reason: string; message: string };

/** A header's first value (Node joins most repeated headers; `authorization` is kept once). */
export function requestHeader(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Bounds of the read-decision cache: users, and topics per user. */
const READ_CACHE_USERS = 256;
const READ_CACHE_TOPICS = 4096;
/** The anonymous user's cache key (user keys start with `u:`). */
const ANONYMOUS = 'anonymous';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** RFC 7617 credentials: base64 of UTF-8 `user:password`, split at the first colon. */
function parseBasic(value: string): { username: string; password: string } | undefined {
  if (!BASE64.test(value)) return undefined;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(value, 'base64'));
  } catch {
    return undefined;
  }
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/**
 * Makes every client of the HTTP listener a broker identity: HTTP Basic checked like an MQTT CONNECT
 * (password_file, allow_anonymous), bearer tokens mapped to users (`http_token_file`), anonymous only
 * where allow_anonymous allows it; and the ACL of that identity for what it may subscribe to and read.
 * With `per_listener_settings true` the security of the first MQTT listener applies (docs/security.md).
 * Refusals are logged (user, address, reason: never a password or token) and counted.
 */
export class HttpAuth {
  private userTokens = new Map<string, string>();
  private metricsTokens?: Set<string>;
  private legacyToken?: Buffer;
  private readonly refused: Counter<'reason'>;
  private readonly listener?: ListenerConfig;
  /** User key → topic → may read; bounded (cleared when full), emptied when the ACL is reloaded. */
  private readonly readCache = new Map<string, Map<string, boolean>>();
  private readonly reporter: RefusalReporter;

  constructor(
    private readonly cfg: HttpAuthConfig,
    /** The deprecated `http_sse_token_file`: one token, no user; it reads as the anonymous user. */
    private readonly legacyTokenFile: string | undefined,
    private readonly access: Access,
    listeners: { perListenerSettings: boolean; listeners: ListenerConfig[] },
    private readonly log: Logger,
    registry: Registry,
    probe: BrokerProbe,
  ) {
    this.reporter = new RefusalReporter(probe);
    this.listener = listeners.perListenerSettings ? listeners.listeners[0] : undefined;
    this.refused = new Counter({
      name: 'mqprobe_http_auth_refused_total',
      help: "HTTP requests refused by the HTTP listener's authentication, by reason.",
      labelNames: ['reason'],
      registers: [registry],
    });
  }

  /** Reads the token files; at start (an error stops the broker) and on SIGHUP (an error keeps the old tokens). */
  async load(): Promise<void> {
    // called after the ACL was (re)loaded: earlier read decisions may be stale, whatever the token files hold
    this.readCache.clear();
    const users = this.cfg.userTokens ? await loadUserTokens('http_token_file', this.cfg.userTokens) : new Map<string, string>();
    const metrics = this.cfg.metricsTokens ? await loadTokenSet('http_metrics_token_file', this.cfg.metricsTokens) : undefined;
    const legacy = this.legacyTokenFile ? this.readLegacy(this.legacyTokenFile) : undefined;
    this.userTokens = users;
    this.metricsTokens = metrics;
    this.legacyToken = legacy === undefined ? undefined : Buffer.from(tokenDigest(legacy), 'hex');
    if (legacy !== undefined)
      this.log.warn(
        'http_sse_token_file is deprecated: its token now acts as the anonymous user, under the anonymous ACL; give each client a user with http_token_file (docs/security.md)',
      );
  }

  private readLegacy(file: string): string {
    try {
      return readLegacySseToken(file);
    } catch (err) {
      throw new Error(`http_sse_token_file: ${(err as Error).message}`);
    }
  }

  /** True when a request without credentials is served (as the anonymous user). */
  async anonymousAllowed(): Promise<boolean> {
    return !this.legacyToken && (await this.access.identify(undefined, undefined, this.listener)) === undefined;
  }

  /**
   * Who sent the request: Basic credentials, a bearer token (header, or `?access_token=` where
   * `queryToken` allows it, for browsers' EventSource), else the anonymous user if allowed.
   */
  async identify(req: FastifyRequest, opts: { queryToken: boolean }): Promise<HttpIdentity | HttpRefusal> {
    const auth = requestHeader(req, 'authorization');
    const q = opts.queryToken ? (req.query as Record<string, unknown> | undefined)?.access_token : undefined;
    if (auth !== undefined) {
      const m = /^(\S+)[ \t]+(\S+)[ \t]*$/.exec(auth);
      const scheme = m?.[1].toLowerCase();
      if (scheme === 'basic') return this.basic(req, m![2]);
      if (scheme === 'bearer') return this.bearer(req, m![2]);
      return this.refuse(
        req,
        400,
        'malformed-authorization',
        'expected an Authorization header "Basic <base64 of user:password>" or "Bearer <token>"',
      );
    }
    if (q !== undefined) {
      if (typeof q !== 'string') return this.refuse(req, 400, 'malformed-authorization', 'access_token given more than once');
      return this.bearer(req, q);
    }
    // http_sse_token_file kept its meaning: no request without a credential
    if (this.legacyToken) return this.refuse(req, 401, 'no-credentials', 'credentials required (Basic or Bearer)');
    const refused = await this.access.identify(undefined, undefined, this.listener);
    if (refused) return this.refuse(req, 401, refused, 'credentials required (Basic or Bearer): anonymous access is not allowed');
    return { method: 'anonymous' };
  }

  /**
   * Whether the identity may subscribe to the filter / read the topic (the MQTT ACL of its user).
   * Read decisions are cached per user and topic: an ACL check with patterns costs 1.2 to 3 µs, a
   * cached one 63 ns, paid for every message and every SSE client, and a stream repeats few topics.
   */
  allows(who: HttpIdentity, topic: string, access: 'read' | 'subscribe' | 'write'): boolean {
    if (access !== 'read') return this.access.allows(who.username, topic, access, this.listener);
    const user = who.username === undefined ? ANONYMOUS : `u:${who.username}`;
    let topics = this.readCache.get(user);
    if (!topics) {
      if (this.readCache.size >= READ_CACHE_USERS) this.readCache.clear();
      topics = new Map();
      this.readCache.set(user, topics);
    }
    let allowed = topics.get(topic);
    if (allowed === undefined) {
      allowed = this.access.allows(who.username, topic, 'read', this.listener);
      if (topics.size >= READ_CACHE_TOPICS) topics.clear();
      topics.set(topic, allowed);
    }
    return allowed;
  }

  /** Records the refusals the rate limit still holds back (at shutdown, before `broker-stopped`). */
  flushRefusals(): void {
    this.reporter.flush();
  }

  /** Answers 401 with both challenges, the way a browser offers a login for Basic. */
  challenge(reply: FastifyReply, r: HttpRefusal): void {
    if (r.status === 401) void reply.header('www-authenticate', ['Basic realm="mqprobe", charset="UTF-8"', 'Bearer realm="mqprobe"']);
    void reply.code(r.status).send({ error: r.message });
  }

  /** onRequest hook of /metrics and /healthz: a `http_metrics_token_file` token, when that key is set. */
  readonly guardMetrics = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    if (!this.metricsTokens) return undefined;
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(requestHeader(req, 'authorization') ?? '');
    if (m && this.metricsTokens.has(tokenDigest(m[1]))) return undefined;
    this.report(req, 401, 'metrics-token');
    // returning the reply ends the request here (Fastify's way for an async hook that answers)
    return reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="mqprobe-metrics"')
      .send({ error: 'a http_metrics_token_file token is required' });
  };

  private async basic(req: FastifyRequest, value: string): Promise<HttpIdentity | HttpRefusal> {
    const creds = parseBasic(value);
    if (!creds)
      return this.refuse(req, 400, 'malformed-authorization', 'malformed Basic credentials: expected base64 of UTF-8 "user:password"');
    const refused = await this.access.identify(creds.username, Buffer.from(creds.password, 'utf8'), this.listener);
    if (refused) return this.refuse(req, 401, refused, 'wrong user name or password', creds.username);
    return { username: creds.username, method: 'basic' };
  }

  /**
   * Tokens are kept as SHA-256 digests and looked up by digest: the lookup's timing depends on the
   * digest of the guess, which tells an attacker nothing about a token.
   */
  private bearer(req: FastifyRequest, token: string): HttpIdentity | HttpRefusal {
    const digest = tokenDigest(token);
    const user = this.userTokens.get(digest);
    if (user !== undefined) return { username: user, method: 'bearer' };
    if (this.legacyToken && timingSafeEqual(Buffer.from(digest, 'hex'), this.legacyToken)) return { method: 'sse-token' };
    return this.refuse(req, 401, 'unknown-token', 'unknown bearer token');
  }

  private refuse(req: FastifyRequest, status: 400 | 401, reason: string, message: string, username?: string): HttpRefusal {
    this.report(req, status, reason, username);
    return { status, reason, message };
  }

  /**
   * Logs, counts and captures (`http-refused`, rate limited) one refused request: the method, the
   * path without its query (which may hold an access_token), the status, the reason and the user name
   * it claimed; never a password, a token or the Authorization header.
   */
  report(req: FastifyRequest, status: 400 | 401 | 403, reason: string, username?: string): void {
    this.refused.inc({ reason });
    const path = req.url.split('?')[0].slice(0, 200);
    const user = username?.slice(0, 256);
    this.log.warn({ user, remote: req.ip, path, status, reason }, `HTTP request to ${path} refused: ${reason}`);
    const sock = req.raw.socket;
    this.reporter.refused({
      method: req.method.slice(0, 16),
      path,
      status,
      reason,
      username: user,
      remoteAddress: sock.remoteAddress,
      remotePort: sock.remotePort,
      localPort: sock.localPort,
    });
  }
}

export function isRefusal(r: HttpIdentity | HttpRefusal): r is HttpRefusal {
  return 'status' in r;
}
