import type { ServerResponse } from 'node:http';
import type { BrokerApi } from '../engine/api.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { isValidFilter, levelsMatch } from '../auth/topic-filter.js';
import { isRefusal, requestHeader as header, type HttpAuth, type HttpIdentity } from '../http-auth.js';
import { counter, gauge } from '../metrics.js';
import type { SseConfig } from './sse-config.js';

interface Entry {
  seq: number;
  topic: string;
  levels: string[];
  payload: Buffer;
}

/** What an evicted history slot holds until the evicted front is cut off. */
const EVICTED: Entry = { seq: 0, topic: '', levels: [], payload: Buffer.alloc(0) };

interface SseClient {
  res: ServerResponse;
  /** Who it is: every message it gets passes that user's ACL `read` check. */
  who: HttpIdentity;
  filters: string[][];
  /** Frames of the running tick, written as one chunk when it ends. */
  queued: string[];
  /** Bytes of the replayed history, allowed on top of clientBufferBytes until the client is under the limit once. */
  replayBytes: number;
}

/**
 * Server-Sent Events for broker messages: `GET /sse?topic=<MQTT filter>` (repeatable, default `#`)
 * streams every matching message as `id:` / `event: <topic>` / `data: <payload>`. Ids are
 * `<boot>-<seq>`, boot being the hub's start time: a client reconnecting with `Last-Event-ID` gets what
 * it missed from a bounded history, and after a broker restart (new boot) the whole new history,
 * so it sees each message once. A client that falls `clientBufferBytes` behind is disconnected.
 */
export class SseHub {
  private readonly boot = String(Date.now());
  private seq = 0;
  /** Kept messages are history[historyHead…]; the evicted front is cut off in batches (shift() per message is O(n)). */
  private history: Entry[] = [];
  private historyHead = 0;
  private historyBytes = 0;
  /** Sequence numbers below this were evicted from the history. */
  private evictedUpTo = 0;
  private readonly clients = new Set<SseClient>();
  /** Clients with queued frames, written out in setImmediate. */
  private readonly toFlush = new Set<SseClient>();
  private readonly excluded: string[] = [];
  private heartbeat?: NodeJS.Timeout;
  private detach?: () => void;
  /** Set by close(): new streams are refused from then on. */
  private closed = false;
  private readonly metrics;

  constructor(
    private readonly cfg: SseConfig,
    private readonly log: Logger,
    registry: Registry,
    private readonly auth: HttpAuth,
  ) {
    this.metrics = {
      clients: gauge(registry, 'mqprobe_sse_clients', 'Connected SSE clients.', []),
      events: counter(registry, 'mqprobe_sse_events_total', 'Messages written to SSE clients (one per client).', []),
      dropped: counter(registry, 'mqprobe_sse_clients_dropped_total', 'SSE clients disconnected for falling too far behind.', []),
      refused: counter(registry, 'mqprobe_sse_requests_refused_total', 'SSE requests refused, by reason.', ['reason']),
    };
  }

  /** Follows every message the broker routes to subscribers (BrokerApi.subscribe keeps the engine's internals back). */
  attach(broker: BrokerApi): void {
    this.detach = broker.subscribe('#', (packet, cb) => {
      this.push(packet.topic, packet.payload as Buffer);
      cb();
    });
    this.heartbeat = setInterval(() => this.beat(), this.cfg.heartbeatMs).unref();
  }

  /** Messages on this topic or below it are not streamed (a beat with `beat_output mqtt`). */
  exclude(prefix: string): void {
    this.excluded.push(prefix);
  }

  /** Registers `GET /sse`; must run before the HTTP server listens. */
  route(app: FastifyInstance): void {
    app.get('/sse', (req, reply) => {
      this.open(req, reply).catch((err: Error) => {
        this.log.error({ err: err.message }, 'SSE request failed');
        if (!reply.sent) void reply.code(500).send({ error: 'internal error' });
      });
    });
  }

  /** Streams a message to matching clients and keeps it for resuming ones. */
  push(topic: string, payload: Buffer | string): void {
    if (this.excluded.some((p) => topic === p || topic.startsWith(`${p}/`))) return;
    const buf = typeof payload === 'string' ? Buffer.from(payload) : payload;
    const entry: Entry = { seq: ++this.seq, topic, levels: topic.split('/'), payload: buf };
    this.remember(entry);
    let frame: string | undefined;
    for (const c of this.clients) {
      if (!matches(c.filters, entry.levels) || !this.auth.allows(c.who, topic, 'read')) continue;
      frame ??= this.frame(entry);
      this.write(c, frame);
    }
  }

  /**
   * Stops following the broker and ends every stream; a client that does not take the rest of its
   * stream within `graceMs` is cut off, so a stalled reader cannot hold up a shutdown.
   */
  async close(graceMs = 1000): Promise<void> {
    this.closed = true;
    this.detach?.();
    this.detach = undefined;
    clearInterval(this.heartbeat);
    this.flush();
    const closing = [...this.clients].map(
      (c) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => c.res.destroy(), graceMs);
          c.res.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          c.res.end();
        }),
    );
    this.clients.clear();
    this.metrics.clients.set(0);
    await Promise.all(closing);
  }

  private remember(e: Entry): void {
    if (this.cfg.history === 0) {
      this.evictedUpTo = e.seq;
      return;
    }
    this.history.push(e);
    this.historyBytes += e.payload.length;
    while (
      this.history.length - this.historyHead > this.cfg.history ||
      (this.historyBytes > this.cfg.historyBytes && this.historyHead < this.history.length)
    ) {
      const old = this.history[this.historyHead];
      // the slot stays until the batch cut below; its payload must not (16 MB payloads would pile up)
      this.history[this.historyHead++] = EVICTED;
      this.historyBytes -= old.payload.length;
      this.evictedUpTo = old.seq;
    }
    if (this.historyHead > 1024 && this.historyHead * 2 > this.history.length) {
      this.history = this.history.slice(this.historyHead);
      this.historyHead = 0;
    }
  }

  private async open(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const who = await this.auth.identify(req, { queryToken: true });
    if (isRefusal(who)) {
      this.metrics.refused.inc({ reason: who.status === 401 ? 'unauthorized' : 'bad-authorization' });
      this.auth.challenge(reply, who);
      return;
    }
    const q = req.query as Record<string, string | string[] | undefined>;
    const wanted = q.topic === undefined ? ['#'] : Array.isArray(q.topic) ? q.topic : [q.topic];
    const bad = wanted.find((f) => !isValidFilter(f));
    if (bad !== undefined || wanted.length > 100) {
      this.metrics.refused.inc({ reason: 'bad-filter' });
      void reply
        .code(400)
        .send({ error: bad !== undefined ? `invalid MQTT topic filter "${bad.slice(0, 200)}"` : 'at most 100 topic filters' });
      return;
    }
    // as an MQTT SUBSCRIBE: a filter the user's ACL could never deliver anything to is refused
    const denied = wanted.find((f) => !this.auth.allows(who, f, 'subscribe'));
    if (denied !== undefined) {
      this.metrics.refused.inc({ reason: 'forbidden-filter' });
      this.auth.report(req, 403, 'forbidden-filter', who.username);
      void reply.code(403).send({
        error: `the ACL refuses topic filter "${denied.slice(0, 200)}" to ${who.username === undefined ? 'the anonymous user' : `user "${who.username.slice(0, 200)}"`}`,
      });
      return;
    }
    // the client may have gone while its password was checked
    if (req.raw.destroyed || reply.raw.destroyed) return;
    if (this.closed) {
      // shutting down: a stream opened now would hold the HTTP listener open (a client reconnects at once)
      void reply.code(503).header('retry-after', '5').send({ error: 'the broker is shutting down' });
      return;
    }
    const lastId = header(req, 'last-event-id') ?? (typeof q.lastEventId === 'string' ? q.lastEventId : undefined);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // the stream is the whole connection: when it ends (broker shutdown), so does the socket
      connection: 'close',
      'x-accel-buffering': 'no',
    });
    this.log.debug({ user: who.username, method: who.method, topics: wanted.length }, 'SSE client connected');
    const client: SseClient = { res, who, filters: wanted.map((f) => f.split('/')), queued: [], replayBytes: 0 };
    res.write(`retry: 1000\n: mqprobe sse, topics ${wanted.map(commentSafe).join(' ')}\n\n`);
    this.replay(client, lastId);
    if (res.destroyed) return;
    this.clients.add(client);
    this.metrics.clients.set(this.clients.size);
    res.on('close', () => {
      this.clients.delete(client);
      this.toFlush.delete(client);
      this.metrics.clients.set(this.clients.size);
    });
  }

  /** Sends what a reconnecting client missed: after its last id in this boot, or everything kept if it saw an earlier boot. */
  private replay(client: SseClient, lastId: string | undefined): void {
    if (lastId === undefined) return;
    const m = /^(\d+)-(\d+)$/.exec(lastId.trim());
    const after = m && m[1] === this.boot ? Number(m[2]) : 0;
    if (after < this.evictedUpTo)
      client.res.write(`: history starts after ${this.boot}-${this.evictedUpTo}; older messages are lost to this client\n\n`);
    const frames: string[] = [];
    for (let i = this.historyHead; i < this.history.length; i++) {
      const e = this.history[i];
      if (e.seq > after && matches(client.filters, e.levels) && this.auth.allows(client.who, e.topic, 'read')) frames.push(this.frame(e));
    }
    if (frames.length === 0) return;
    client.res.write(frames.join(''));
    this.metrics.events.inc(frames.length);
    // the history it asked for (bounded by http_sse_history_bytes) does not make the client too slow
    client.replayBytes = client.res.writableLength;
  }

  /**
   * Queues a frame; the frames of one tick go out in one write when it ends. Node's response corks
   * its socket until the next tick, so bytes written within a tick are not "behind" yet: a broker
   * that handles a beat's batch of thousands of messages in one tick would otherwise see every
   * client, however fast it reads, fall behind by the whole batch. A client is too slow when the
   * socket still holds more than clientBufferBytes of earlier ticks' output.
   */
  private write(c: SseClient, text: string): void {
    if (c.res.destroyed || this.tooSlow(c)) return;
    c.queued.push(text);
    if (this.toFlush.size === 0) setImmediate(() => this.flush());
    this.toFlush.add(c);
    this.metrics.events.inc();
  }

  private flush(): void {
    for (const c of this.toFlush) {
      const text = c.queued.length === 1 ? c.queued[0] : c.queued.join('');
      c.queued = [];
      if (!c.res.destroyed && !c.res.writableEnded && !this.tooSlow(c)) c.res.write(text);
    }
    this.toFlush.clear();
  }

  /**
   * Drops the client (true) if its socket holds more than clientBufferBytes it could not send, beyond
   * the replayed history it has not taken yet.
   */
  private tooSlow(c: SseClient): boolean {
    const over = c.res.writableLength - this.cfg.clientBufferBytes;
    if (over <= 0) {
      c.replayBytes = 0;
      return false;
    }
    if (over <= c.replayBytes) return false;
    this.metrics.dropped.inc();
    this.log.warn({ buffered: c.res.writableLength }, 'SSE client dropped: it reads slower than messages arrive');
    this.clients.delete(c);
    this.toFlush.delete(c);
    c.queued = [];
    this.metrics.clients.set(this.clients.size);
    c.res.destroy();
    return true;
  }

  private beat(): void {
    const line = `: heartbeat ${new Date().toISOString()}\n\n`;
    for (const c of this.clients) if (!c.res.destroyed) c.res.write(line);
  }

  private frame(e: Entry): string {
    const text = e.payload.toString('utf8');
    const data =
      text.includes('\n') || text.includes('\r')
        ? text
            .split(/\r\n|\r|\n/)
            .map((l) => `data: ${l}\n`)
            .join('')
        : `data: ${text}\n`;
    return `id: ${this.boot}-${e.seq}\nevent: ${e.topic.replace(/[\r\n]/g, ' ')}\n${data}\n`;
  }
}

function matches(filters: string[][], levels: string[]): boolean {
  return filters.some((f) => levelsMatch(f, levels));
}

function commentSafe(s: string): string {
  return s.replace(/[\r\n]/g, ' ');
}
