/**
 * Capture sink for Elasticsearch and OpenSearch: each batch of serialized capture events goes
 * through the client's bulk helper into the data stream `logs-mqtt.capture-<namespace>`.
 *
 * Delivery rules:
 * - every event is sent with `_id` = its `event.id` and the `create` action, so sending a batch
 *   again after a lost answer stores nothing twice (the copy comes back as 409 and counts as
 *   delivered);
 * - a document the cluster refuses for itself (mapping conflict, 400) does not hold up the others:
 *   it is counted and kept, as the raw event in `event.original` of a `pipeline_error` document in
 *   the same data stream;
 * - when the cluster is unreachable or keeps answering 429/5xx, `write()` rejects and the caller
 *   keeps the batch (memory queue, then spool) and offers it again later.
 */
import type { Logger } from 'pino';
import { connect, type BulkDrop, type BulkOptions, type Product, type RestClient } from '../../elastic/connection.js';
import { DATASET, dataStreamName } from '../../elastic/assets.js';
import type { CaptureConfig } from '../config.js';
import { urlArg, type SinkDefinition } from './definition.js';

export interface SearchSinkOptions {
  kind: Product;
  url: URL;
  elastic: CaptureConfig['elastic'];
  log: Logger;
  /** Bulk helper retries for 429 answers, and the pause between them. */
  retries?: number;
  retryWaitMs?: number;
  /** Bulk requests are cut at this many bytes. */
  flushBytes?: number;
  /** Make written events searchable at once (tests, benchmarks). */
  refresh?: boolean;
}

export interface SearchSinkStats {
  /** Events stored (first time). */
  delivered: number;
  /** Events the cluster already had (a batch sent again after a lost answer). */
  duplicates: number;
  /** Events refused by the cluster for their content; kept as `pipeline_error` documents. */
  rejected: number;
  /** Rejected events whose `pipeline_error` document was refused too: counted, logged, gone. */
  lost: number;
  /** write() calls that failed and left their batch to the caller. */
  failedWrites: number;
}

interface Prepared {
  line: string;
  id?: string;
  timestamp?: string;
  /** Not a JSON object: never sent, kept as a pipeline_error document right away. */
  invalid?: boolean;
}

interface Rejection {
  doc: Prepared;
  drop: BulkDrop;
}

/** A failure the caller should retry later (cluster down, overloaded, or a bad answer). */
export class SinkUnavailableError extends Error {
  override name = 'SinkUnavailableError';
}

export class SearchSink {
  readonly name: Product;
  readonly index: string;
  private client?: RestClient;
  private connecting?: Promise<RestClient>;
  private readonly log: Logger;
  private readonly counters: SearchSinkStats = { delivered: 0, duplicates: 0, rejected: 0, lost: 0, failedWrites: 0 };
  private readonly dataStreamFields: string;

  constructor(private readonly o: SearchSinkOptions) {
    this.name = o.kind;
    this.index = dataStreamName(o.elastic.namespace);
    this.log = o.log;
    this.dataStreamFields = JSON.stringify({ type: 'logs', dataset: DATASET, namespace: o.elastic.namespace });
  }

  stats(): SearchSinkStats {
    return { ...this.counters };
  }

  /**
   * Delivers one batch (one serialized event per string). Resolves when every event is stored or
   * rejected-and-kept; rejects with SinkUnavailableError when the batch must be offered again.
   */
  async write(batch: readonly string[]): Promise<void> {
    if (batch.length === 0) return;
    try {
      const client = await this.connection();
      const prepared = batch.map((line) => this.prepare(line));
      const rejected = await this.bulk(client, prepared);
      if (rejected.length) await this.keepRejected(client, rejected);
    } catch (e) {
      this.counters.failedWrites++;
      const message = e instanceof Error ? e.message : String(e);
      this.log.warn({ events: batch.length, err: message }, `${this.name} write failed; the batch stays with the caller`);
      throw e instanceof SinkUnavailableError ? e : new SinkUnavailableError(message);
    }
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await c?.close();
  }

  private connection(): Promise<RestClient> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= connect({
      url: this.o.url,
      expect: this.o.kind,
      apiKeyFile: this.o.elastic.apiKeyFile,
      username: this.o.elastic.username,
      passwordFile: this.o.elastic.passwordFile,
      cafile: this.o.elastic.cafile,
    }).then(
      (c) => {
        this.client = c;
        this.connecting = undefined;
        this.log.info(
          { product: c.info.product, version: c.info.version, index: this.index },
          `connected to ${c.info.product} ${c.info.version}`,
        );
        return c;
      },
      (e: unknown) => {
        this.connecting = undefined;
        throw e;
      },
    );
    return this.connecting;
  }

  /** Adds the data_stream.* fields and finds the event's id and timestamp. */
  private prepare(line: string): Prepared {
    let event: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = JSON.parse(line);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) event = parsed as Record<string, unknown>;
    } catch {
      // not JSON: sent as is, the cluster refuses it, and it is kept as a pipeline_error document
    }
    if (!event) return { line, invalid: true };
    const id = (event.event as { id?: unknown } | undefined)?.id;
    const ts = event['@timestamp'];
    const rest = line.slice(line.indexOf('{') + 1).trimStart();
    return {
      line: `{"data_stream":${this.dataStreamFields}${rest.startsWith('}') ? '' : ','}${rest}`,
      id: typeof id === 'string' && id.length > 0 && id.length <= 512 ? id : undefined,
      timestamp: typeof ts === 'string' ? ts : undefined,
    };
  }

  /** One pass of the bulk helper; returns the documents refused for their content. */
  private async bulk(client: RestClient, all: Prepared[]): Promise<Rejection[]> {
    const rejected: Rejection[] = all
      .filter((d) => d.invalid)
      .map((doc) => ({
        doc,
        drop: { status: 400, error: { type: 'not_json', reason: 'the capture event is not a JSON object' }, document: doc.line },
      }));
    const docs = all.filter((d) => !d.invalid);
    if (docs.length === 0) return rejected;
    const byLine = new Map(docs.map((d) => [d.line, d]));
    const byId = new Map(docs.filter((d) => d.id).map((d) => [d.id, d]));
    let retryable = 0;
    let duplicates = 0;
    let lastRetryable = '';
    const stats = await client.bulk(
      docs.map((d) => d.line),
      this.bulkOptions(byLine, (drop) => {
        if (drop.status === 409) duplicates++;
        else if (drop.status === 429 || drop.status >= 500 || drop.status === 0) {
          retryable++;
          lastRetryable = `${drop.status} ${drop.error?.type ?? ''}`.trim();
        } else {
          const doc = (drop.id && byId.get(drop.id)) || {
            line: typeof drop.document === 'string' ? drop.document : JSON.stringify(drop.document),
          };
          rejected.push({ doc, drop });
        }
      }),
    );
    this.counters.delivered += stats.successful;
    this.counters.duplicates += duplicates;
    if (retryable)
      throw new SinkUnavailableError(`${retryable} of ${docs.length} events not stored (${lastRetryable}); the batch will be sent again`);
    return rejected;
  }

  /** The bulk helper's options: documents keep the ids they were prepared with. */
  private bulkOptions(byLine: Map<string, Prepared>, onDrop: BulkOptions['onDrop']): BulkOptions {
    return {
      index: this.index,
      idOf: (line) => byLine.get(line)?.id,
      retries: this.o.retries ?? 2,
      waitMs: this.o.retryWaitMs ?? 1000,
      flushBytes: this.o.flushBytes ?? 5 * 1024 * 1024,
      refresh: this.o.refresh,
      onDrop,
    };
  }

  private async keepRejected(client: RestClient, rejected: Rejection[]): Promise<void> {
    this.counters.rejected += rejected.length;
    const envelopes: Prepared[] = rejected.map(({ doc, drop }) => {
      const reason = drop.error?.reason ?? `HTTP ${drop.status}`;
      this.log.warn(
        { status: drop.status, type: drop.error?.type, id: doc.id },
        `${this.name} refused a capture event; kept as pipeline_error`,
      );
      return {
        id: doc.id,
        line: JSON.stringify({
          '@timestamp': doc.timestamp && !Number.isNaN(Date.parse(doc.timestamp)) ? doc.timestamp : new Date().toISOString(),
          message: `mqprobe capture event refused by ${this.name}: ${reason}`,
          data_stream: JSON.parse(this.dataStreamFields),
          event: { kind: 'pipeline_error', dataset: DATASET, original: doc.line, ...(doc.id ? { id: doc.id } : {}) },
          error: { type: drop.error?.type ?? 'unknown', message: reason },
        }),
      };
    });
    let lost = 0;
    let retryable = 0;
    const byLine = new Map(envelopes.map((d) => [d.line, d]));
    await client.bulk(
      envelopes.map((d) => d.line),
      this.bulkOptions(byLine, (drop) => {
        if (drop.status === 409) return;
        if (drop.status === 429 || drop.status >= 500 || drop.status === 0) {
          retryable++;
          return;
        }
        lost++;
        this.log.error(
          { status: drop.status, type: drop.error?.type },
          `${this.name} refused the pipeline_error document of a rejected event; event lost`,
        );
      }),
    );
    this.counters.lost += lost;
    if (retryable) throw new SinkUnavailableError(`${retryable} rejected events could not be kept yet; the batch will be sent again`);
  }
}

export const searchSinkDefinition: SinkDefinition = {
  kinds: ['elasticsearch', 'opensearch'],
  usage: 'elasticsearch <url> | opensearch <url>',
  parse: (v, kind) => (v.count(2), { kind, target: urlArg(v, 1, ['http', 'https']) }),
  name: (c) => `${c.kind}:${new URL(c.target!).host}`,
  create(c, env) {
    const s = new SearchSink({
      kind: c.kind as Product,
      url: new URL(c.target!),
      elastic: env.config.elastic,
      log: env.log.child({ name: `capture.${c.kind}` }),
    });
    return { io: { write: (lines) => s.write(lines), close: () => s.close(), refused: () => s.stats().rejected }, spools: true };
  },
};
