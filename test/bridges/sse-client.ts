import http from 'node:http';
import type { Teardown } from '../helpers/broker.js';

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/**
 * A Server-Sent Events client that behaves like a browser's EventSource: it parses the stream per
 * the HTML spec (fields, comments, multi-line data, CR/LF/CRLF) and, unless told not to, reconnects
 * after the stream ends, sending `Last-Event-ID`. Closed in teardown.
 */
export class SseClient {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  lastEventId?: string;
  status?: number;
  connections = 0;
  private req?: http.ClientRequest;
  private closed = false;
  private opened?: Promise<number>;

  constructor(
    t: Teardown,
    private readonly url: string,
    private readonly opts: {
      headers?: Record<string, string>;
      reconnect?: boolean;
      retryMs?: number;
      onEvent?: (e: SseEvent) => void;
    } = {},
  ) {
    t.teardown(() => this.close());
  }

  /** Connects; resolves with the HTTP status once the response head arrived. */
  open(): Promise<number> {
    this.opened = new Promise((resolve) => {
      const headers: Record<string, string> = { accept: 'text/event-stream', ...this.opts.headers };
      if (this.lastEventId !== undefined) headers['last-event-id'] = this.lastEventId;
      const req = http.get(this.url, { headers, agent: false }, (res) => {
        this.status = res.statusCode;
        this.connections++;
        resolve(res.statusCode ?? 0);
        res.setEncoding('utf8');
        let buf = '';
        res.on('data', (chunk: string) => {
          buf += chunk;
          const parts = buf.split(/\r\n|\r|\n/);
          buf = parts.pop()!;
          for (const line of parts) this.line(line);
        });
        res.on('close', () => this.ended());
        res.on('error', () => undefined);
      });
      req.on('error', () => {
        resolve(0);
        this.ended();
      });
      this.req = req;
    });
    return this.opened;
  }

  private pending: { id?: string; event?: string; data: string[] } = { data: [] };

  private line(line: string): void {
    if (line === '') {
      const p = this.pending;
      this.pending = { data: [] };
      if (p.id !== undefined) this.lastEventId = p.id;
      if (p.data.length) {
        const e = { id: p.id, event: p.event ?? 'message', data: p.data.join('\n') };
        this.events.push(e);
        this.opts.onEvent?.(e);
      }
      return;
    }
    if (line.startsWith(':')) {
      this.comments.push(line.slice(1).trim());
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.pending.data.push(value);
    else if (field === 'event') this.pending.event = value;
    else if (field === 'id') this.pending.id = value;
  }

  private ended(): void {
    if (this.closed || !this.opts.reconnect) return;
    setTimeout(() => {
      if (!this.closed) void this.open();
    }, this.opts.retryMs ?? 200);
  }

  /** Events whose `event:` (the topic) is this topic. */
  on(topic: string): SseEvent[] {
    return this.events.filter((e) => e.event === topic);
  }

  close(): void {
    this.closed = true;
    this.req?.destroy();
  }
}

/**
 * Opens mqprobe's `GET /sse?topic=<filter>` (no reconnect) and resolves once the hub follows the
 * filter. `replay`: sends a Last-Event-ID of an earlier broker run, so the hub first replays its
 * whole history (everything since the broker started).
 */
export async function openSse(
  t: Teardown,
  httpPort: number,
  filter: string,
  opts: { replay?: boolean; onEvent?: (e: SseEvent) => void } = {},
): Promise<SseClient> {
  const c = new SseClient(t, `http://127.0.0.1:${httpPort}/sse?topic=${encodeURIComponent(filter)}`, {
    headers: opts.replay ? { 'last-event-id': '0-0' } : {},
    onEvent: opts.onEvent,
  });
  const status = await c.open();
  if (status !== 200) throw new Error(`/sse answered ${status}`);
  return c;
}
