import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Teardown } from '../../helpers/broker.js';

export interface OrionRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body?: any;
}

/**
 * Stands in for the subscription API of Orion (`/v2/subscriptions`) and Orion-LD
 * (`/ngsi-ld/v1/subscriptions`) as their manuals document it: POST answers 201 with the new id in
 * `Location` (ids handed out from the given list, so the fixture notifications carry the right ones),
 * GET answers 200 or 404, DELETE 204 or 404. Records every request; forget() drops a subscription as
 * a restarted Orion without persistence would. Closed in teardown.
 */
export class FakeOrion {
  readonly requests: OrionRequest[] = [];
  /** id → the subscription body as created. */
  readonly subscriptions = new Map<string, any>();
  private server?: http.Server;
  url = '';

  constructor(
    t: Teardown,
    /** Ids the next POSTs hand out, in order (push more as needed). */
    readonly ids: string[],
  ) {
    t.teardown(() => this.stop());
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (c) => (text += c));
      req.on('end', () => this.answer(req, text, res));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    server?.closeAllConnections();
    if (server) await new Promise((r) => server.close(r));
  }

  forget(id: string): void {
    this.subscriptions.delete(id);
  }

  /** Where a subscription notifies (v2 `notification.http.url`, NGSI-LD `notification.endpoint.uri`). */
  notifyUrl(id: string): string {
    const n = this.subscriptions.get(id)?.notification;
    return n?.http?.url ?? n?.httpCustom?.url ?? n?.endpoint?.uri;
  }

  private answer(req: http.IncomingMessage, text: string, res: http.ServerResponse): void {
    const path = req.url ?? '';
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    this.requests.push({ method: req.method ?? '', path, headers: req.headers, body });
    const m = /^\/(v2|ngsi-ld\/v1)\/subscriptions(?:\/([^/?]+))?$/.exec(path);
    if (!m) return void res.writeHead(404).end();
    const id = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    if (req.method === 'POST' && id === undefined) {
      const next = this.ids.shift();
      if (!next) return void res.writeHead(500).end('{"error":"out of ids"}');
      this.subscriptions.set(next, body);
      return void res.writeHead(201, { location: `/${m[1]}/subscriptions/${encodeURIComponent(next)}` }).end();
    }
    if (id !== undefined && !this.subscriptions.has(id))
      return void res
        .writeHead(404, { 'content-type': 'application/json' })
        .end('{"error":"NotFound","description":"The requested subscription has not been found. Check id"}');
    if (req.method === 'GET' && id !== undefined)
      return void res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ id, ...(this.subscriptions.get(id) as object) }));
    if (req.method === 'DELETE' && id !== undefined) {
      this.subscriptions.delete(id);
      return void res.writeHead(204).end();
    }
    res.writeHead(405).end();
  }
}
