import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Teardown } from '../../helpers/broker.js';

/** One event of the stream as it goes on the wire: `id:`/`event:`/`data:` lines and the closing blank line. */
export interface WireEvent {
  id: string;
  text: string;
}

/** What one connection does, by its number (0, 1, …): start earlier than asked (duplicates), drop or hold mid-stream. */
export interface ConnectionPlan {
  /** Resend this many events before the one after Last-Event-ID (a server replaying what the client already had). */
  rewind?: number;
  /** After this many events, send the first half of the next one and close the connection. */
  dropAfter?: number;
  /** After this many events, send nothing more (heartbeats only) until release(). */
  holdAfter?: number;
}

/** Splits an `.sse` file into its events (blocks ending in a blank line), keeping each block's bytes. */
export function wireEvents(sse: string): WireEvent[] {
  return sse
    .split(/\n\n+/)
    .filter((b) => b.trim() !== '')
    .map((b) => ({ id: /^id: ?(.*)$/m.exec(b)![1], text: `${b}\n\n` }));
}

/** An event in OpenCTI's wire format: `data:` is one line of compact JSON, as OpenCTI writes it. */
export function wireEvent(id: string, event: string, data: unknown): WireEvent {
  return { id, text: `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n` };
}

/**
 * Stands in for OpenCTI's live stream endpoint (`GET /stream`): bearer-token check (401 otherwise),
 * `text/event-stream` with the given events from after the request's `Last-Event-ID`, heartbeat events
 * while idle, and per-connection misbehaviour (rewind, drop mid-event, hold). Records every request's
 * headers. Closed in teardown.
 */
export class OpenCtiReplay {
  readonly requests: http.IncomingHttpHeaders[] = [];
  private server?: http.Server;
  private readonly sockets = new Set<Socket>();
  private port = 0;
  private held: (() => void)[] = [];
  private beats = new Set<NodeJS.Timeout>();
  /** Events the stream sends to open connections and new ones. */
  events: WireEvent[];

  constructor(
    t: Teardown,
    events: WireEvent[],
    private readonly token: string,
    private readonly plan: (connection: number) => ConnectionPlan = () => ({}),
  ) {
    this.events = events;
    t.teardown(() => this.stop());
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/stream`;
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => void this.serve(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(this.port, '127.0.0.1', r));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Closes the server and every connection (OpenCTI going down). */
  async stop(): Promise<void> {
    this.release();
    for (const b of this.beats) clearInterval(b);
    this.beats.clear();
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise((r) => server.close(r));
  }

  /** Lets held connections go on. */
  release(): void {
    const held = this.held;
    this.held = [];
    for (const go of held) go();
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const n = this.requests.length;
    this.requests.push(req.headers);
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end(JSON.stringify({ errors: [{ message: 'You must be logged in to do this.' }] }));
      return;
    }
    const plan = this.plan(n);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
    });
    res.write('event: connected\ndata: {}\n\n');
    const beat = setInterval(() => res.write(`event: heartbeat\ndata: ${new Date().toISOString()}\n\n`), 200);
    this.beats.add(beat);
    res.on('close', () => {
      clearInterval(beat);
      this.beats.delete(beat);
    });
    const last = req.headers['last-event-id'];
    let i = last === undefined ? 0 : this.events.findIndex((e) => e.id === last) + 1;
    i = Math.max(0, i - (plan.rewind ?? 0));
    let sent = 0;
    while (!res.destroyed) {
      if (i >= this.events.length) {
        await new Promise((r) => setTimeout(r, 50)); // live: wait for appended events
        continue;
      }
      if (plan.holdAfter !== undefined && sent === plan.holdAfter) await new Promise<void>((r) => this.held.push(r));
      const e = this.events[i];
      if (plan.dropAfter !== undefined && sent === plan.dropAfter) {
        // half an event, then the TCP connection ends (FIN) without the chunked response's end: a stream cut mid-event
        res.write(e.text.slice(0, Math.floor(e.text.length / 2)), () => res.socket?.end());
        return;
      }
      if (!res.write(e.text)) await new Promise((r) => res.once('drain', r));
      i++;
      sent++;
    }
  }
}
