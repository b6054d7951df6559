/**
 * One connection to Elasticsearch or OpenSearch for setup and for the capture sink: reads the
 * credential files, finds out which product and version answers, and wraps the product's own
 * client (the Elastic client refuses OpenSearch, so each gets its own) behind one small REST shape.
 * Error messages name the URL and what to do, never a credential.
 */
import { readFileSync } from 'node:fs';
import { Client as EsClient } from '@elastic/elasticsearch';
import { Client as OsClient } from '@opensearch-project/opensearch';
import { httpRequest, type HttpResponse } from './http.js';

export type Product = 'elasticsearch' | 'opensearch';

export interface ConnectionOptions {
  url: URL;
  /** File holding an Elasticsearch API key in its encoded form. */
  apiKeyFile?: string;
  username?: string;
  passwordFile?: string;
  /** PEM CA bundle for an https URL. */
  cafile?: string;
  /** The product the user configured; a different one answering is an error. Unset: accept either. */
  expect?: Product;
  requestTimeoutMs?: number;
}

export interface ClusterInfo {
  product: Product;
  version: string;
  major: number;
}

/** A clear, one-line problem with the cluster or its settings (the CLI prints only the message). */
export class ElasticError extends Error {
  override name = 'ElasticError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface RestResponse<T> {
  status: number;
  body: T;
}

export interface BulkDrop {
  status: number;
  /** The `_id` the document was sent with. */
  id?: string;
  error: { type?: string; reason?: string } | null;
  document: unknown;
}

export interface BulkStats {
  successful: number;
  failed: number;
  retry: number;
}

/** What setup and the sink need from either product's client. */
export interface RestClient {
  readonly info: ClusterInfo;
  readonly url: URL;
  /** One REST call; a 404 is returned (not thrown) when `allow404`. */
  send<T = unknown>(method: string, path: string, body?: unknown, opts?: { allow404?: boolean }): Promise<RestResponse<T>>;
  /** The client's bulk helper: `create` actions into `index`, per-document drops reported to `onDrop`. */
  bulk(docs: string[], opts: BulkOptions): Promise<BulkStats>;
  close(): Promise<void>;
}

export interface BulkOptions {
  index: string;
  /** The `_id` of each document (makes a resend after a lost answer harmless), or undefined. */
  idOf(doc: string): string | undefined;
  onDrop(drop: BulkDrop): void;
  retries: number;
  waitMs: number;
  flushBytes: number;
  refresh?: boolean;
}

export interface Credentials {
  headers: Record<string, string>;
  apiKey?: string;
  basic?: { username: string; password: string };
  ca?: string;
}

function readSecret(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ElasticError(`cannot read the ${what} file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const value = text.trim();
  if (!value) throw new ElasticError(`the ${what} file ${file} is empty`);
  if (/[\r\n]/.test(value)) throw new ElasticError(`the ${what} file ${file} must hold one line`);
  return value;
}

/** Reads the credential files once; the result carries the Authorization header for plain HTTP calls. */
export function readCredentials(o: Pick<ConnectionOptions, 'apiKeyFile' | 'username' | 'passwordFile' | 'cafile'>): Credentials {
  if (o.apiKeyFile && (o.username || o.passwordFile))
    throw new ElasticError('give either an API key file or a user with a password file, not both');
  if (!!o.username !== !!o.passwordFile) throw new ElasticError('a user needs a password file and a password file needs a user');
  const creds: Credentials = { headers: {} };
  if (o.apiKeyFile) {
    creds.apiKey = readSecret(o.apiKeyFile, 'API key');
    creds.headers.authorization = `ApiKey ${creds.apiKey}`;
  } else if (o.username && o.passwordFile) {
    creds.basic = { username: o.username, password: readSecret(o.passwordFile, 'password') };
    creds.headers.authorization = `Basic ${Buffer.from(`${o.username}:${creds.basic.password}`).toString('base64')}`;
  }
  if (o.cafile) {
    try {
      creds.ca = readFileSync(o.cafile, 'utf8');
    } catch (e) {
      throw new ElasticError(`cannot read the CA file ${o.cafile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  return creds;
}

/** Turns a socket/TLS failure into what the user should check. */
export function networkProblem(url: URL, e: unknown): ElasticError {
  const err = e as NodeJS.ErrnoException;
  // Node errors carry a code; the clients' ConnectionError only has it in the message.
  const text = `${err.code ?? ''} ${err.message ?? ''}`;
  const where = url.origin;
  if (/ECONNREFUSED/.test(text)) return new ElasticError(`cannot reach ${where}: connection refused (nothing listens there)`);
  if (/ENOTFOUND|EAI_AGAIN/.test(text)) return new ElasticError(`cannot reach ${where}: unknown host ${url.hostname}`);
  if (/EPROTO|wrong version number|packet length too long/.test(text))
    return new ElasticError(`${where} does not speak TLS (use http:// instead of https://)`);
  if (/CERT|certificate|SELF_SIGNED/i.test(text)) {
    return new ElasticError(
      `TLS: the certificate of ${where} is not trusted (${err.code ?? err.message}); give the CA with --cafile / capture_elasticsearch_cafile`,
    );
  }
  if (/ECONNRESET|socket hang up/.test(text)) {
    return new ElasticError(
      `${where} closed the connection without an HTTP answer${url.protocol === 'http:' ? ' (does it need https://?)' : ''}`,
    );
  }
  if (/ETIMEDOUT|timed? ?out|no answer/i.test(text)) return new ElasticError(`no answer from ${where} in time`);
  return new ElasticError(`cannot reach ${where}: ${err.message}`);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Which product and version answer at the URL; errors for wrong URLs, bad credentials and old versions. */
export async function probeCluster(
  url: URL,
  creds: { headers: Record<string, string>; ca?: string },
  timeoutMs = 10_000,
): Promise<ClusterInfo> {
  const get = async (path: string): Promise<HttpResponse> => {
    try {
      return await httpRequest({
        method: 'GET',
        url: new URL(path, url),
        headers: { accept: 'application/json', ...creds.headers },
        ca: creds.ca,
        timeoutMs,
        maxBytes: 1024 * 1024,
      });
    } catch (e) {
      throw e instanceof ElasticError ? e : networkProblem(url, e);
    }
  };
  const root = await get(url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`);
  if (root.status === 401) {
    throw new ElasticError(
      `${url.origin} rejected the credentials (HTTP 401)${creds.headers.authorization ? '' : ': it needs a user and password file or an API key file'}`,
      401,
    );
  }
  if (root.status === 403)
    throw new ElasticError(`${url.origin} refused access (HTTP 403): the user or API key lacks the monitor privilege`, 403);
  const rootBody = parseJson(root.text) as { version?: { number?: string; distribution?: string } } | undefined;
  let product: Product | undefined;
  let version: string | undefined;
  if (root.headers['x-elastic-product'] === 'Elasticsearch') {
    product = 'elasticsearch';
    version = rootBody?.version?.number;
    if (!version) {
      // Builds without the root endpoint (the minimal test distribution) still answer node info.
      const nodes = parseJson((await get('_nodes/_local?filter_path=nodes.*.version')).text) as
        { nodes?: Record<string, { version?: string }> } | undefined;
      version = Object.values(nodes?.nodes ?? {})[0]?.version;
    }
  } else if (rootBody?.version?.distribution === 'opensearch') {
    product = 'opensearch';
    version = rootBody.version.number;
  }
  if (!product || !version) {
    const what = root.headers['kbn-name'] || /kibana/i.test(root.text) ? ' (that looks like Kibana; give the Elasticsearch URL)' : '';
    throw new ElasticError(`${url.href} is not Elasticsearch or OpenSearch: HTTP ${root.status} without a product version${what}`);
  }
  const major = Number(version.split('.')[0]);
  if (product === 'elasticsearch' && !(major >= 8)) {
    throw new ElasticError(
      `${url.origin} runs Elasticsearch ${version}; mqprobe needs Elasticsearch 8.0 or later (data streams with composable templates, the 8.x client)`,
    );
  }
  if (product === 'opensearch' && !(major >= 2)) {
    throw new ElasticError(`${url.origin} runs OpenSearch ${version}; mqprobe needs OpenSearch 2.0 or later`);
  }
  return { product, version, major };
}

/** Connects, checks the product and returns a RestClient over the product's own client. */
export async function connect(o: ConnectionOptions): Promise<RestClient> {
  const creds = readCredentials(o);
  const info = await probeCluster(o.url, creds, Math.min(o.requestTimeoutMs ?? 10_000, 10_000));
  if (o.expect && o.expect !== info.product) {
    throw new ElasticError(
      `${o.url.origin} is ${info.product} ${info.version}, not ${o.expect}: use capture_sink ${info.product} ${o.url.href}`,
    );
  }
  return info.product === 'elasticsearch' ? elasticsearchClient(o, creds, info) : opensearchClient(o, creds, info);
}

/** Status and server reason of a failed client call, or a network problem. */
function describeFailure(url: URL, e: unknown): ElasticError {
  const err = e as { meta?: { statusCode?: number; body?: unknown }; name?: string; message?: string };
  const status = err.meta?.statusCode;
  if (typeof status === 'number' && status > 0) {
    const body = err.meta?.body as { error?: { type?: string; reason?: string; root_cause?: { reason?: string }[] } | string } | undefined;
    const reason = typeof body?.error === 'string' ? body.error : (body?.error?.root_cause?.[0]?.reason ?? body?.error?.reason ?? '');
    if (status === 401) return new ElasticError(`${url.origin} rejected the credentials (HTTP 401)`, 401);
    if (status === 403) return new ElasticError(`${url.origin} refused the request (HTTP 403): ${reason || 'missing privileges'}`, 403);
    return new ElasticError(`HTTP ${status}${reason ? `: ${reason}` : ''}`, status);
  }
  const cause = (e as { cause?: unknown }).cause;
  return networkProblem(url, cause ?? e);
}

/** The bulk helper options both clients share (the OpenSearch client forked the Elastic 7.x helper). */
interface SharedBulkHelperOptions {
  datasource: string[];
  onDocument(doc: string): { create: { _index: string; _id?: string } };
  onDrop(d: { status: number; error: BulkDrop['error']; document: unknown; operation?: unknown }): void;
  retries: number;
  wait: number;
  flushBytes: number;
  concurrency: number;
  refreshOnCompletion: string | false;
}
type SharedBulkHelper = (opts: SharedBulkHelperOptions) => PromiseLike<BulkStats>;
type RawRequest = (method: string, path: string, body: unknown, ignore: number[]) => Promise<{ statusCode?: number | null; body: unknown }>;

function restClient(
  o: ConnectionOptions,
  info: ClusterInfo,
  request: RawRequest,
  bulkHelper: SharedBulkHelper,
  close: () => Promise<void>,
): RestClient {
  return {
    info,
    url: o.url,
    async send<T>(method: string, path: string, body?: unknown, opts: { allow404?: boolean } = {}) {
      try {
        const r = await request(method, path, body, opts.allow404 ? [404] : []);
        return { status: r.statusCode ?? 0, body: r.body as T };
      } catch (e) {
        throw describeFailure(o.url, e);
      }
    },
    async bulk(docs, b) {
      const id = (doc: string) => b.idOf(doc);
      try {
        const stats = await bulkHelper({
          datasource: docs,
          onDocument: (doc) => ({ create: { _index: b.index, ...(id(doc) ? { _id: id(doc) } : {}) } }),
          onDrop: (d) =>
            b.onDrop({
              status: d.status,
              error: d.error,
              document: d.document,
              id: (d.operation as { create?: { _id?: string } } | undefined)?.create?._id,
            }),
          retries: b.retries,
          wait: b.waitMs,
          flushBytes: b.flushBytes,
          concurrency: 1,
          refreshOnCompletion: b.refresh ? b.index : false,
        });
        return { successful: stats.successful, failed: stats.failed, retry: stats.retry };
      } catch (e) {
        throw describeFailure(o.url, e);
      }
    },
    close,
  };
}

function elasticsearchClient(o: ConnectionOptions, creds: Credentials, info: ClusterInfo): RestClient {
  const client = new EsClient({
    node: o.url.href,
    auth: creds.apiKey ? { apiKey: creds.apiKey } : creds.basic,
    tls: creds.ca ? { ca: creds.ca } : undefined,
    requestTimeout: o.requestTimeoutMs ?? 30_000,
    maxRetries: 1,
  });
  return restClient(
    o,
    info,
    (method, path, body, ignore) =>
      client.transport.request({ method, path, body: body as Record<string, unknown> | undefined }, { meta: true, ignore }),
    (opts) => client.helpers.bulk<string>(opts as Parameters<typeof client.helpers.bulk<string>>[0]),
    () => client.close(),
  );
}

function opensearchClient(o: ConnectionOptions, creds: Credentials, info: ClusterInfo): RestClient {
  const client = new OsClient({
    node: o.url.href,
    auth: creds.basic,
    // The OpenSearch client has no API key option; the header is the one Elasticsearch-compatible proxies read.
    headers: creds.apiKey ? { authorization: `ApiKey ${creds.apiKey}` } : undefined,
    ssl: creds.ca ? { ca: creds.ca } : undefined,
    requestTimeout: o.requestTimeoutMs ?? 30_000,
    maxRetries: 1,
  });
  return restClient(
    o,
    info,
    (method, path, body, ignore) =>
      client.transport.request({ method, path, body: body as Record<string, unknown> | undefined }, { ignore }),
    (opts) => client.helpers.bulk<string>(opts as Parameters<typeof client.helpers.bulk<string>>[0]) as unknown as PromiseLike<BulkStats>,
    () => client.close(),
  );
}
