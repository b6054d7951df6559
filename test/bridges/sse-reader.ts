import http from 'node:http';
import type { Teardown } from '../helpers/broker.js';

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/**
 * Opens mqprobe's `GET /sse?topic=<filter>` and parses the stream into events as they come (lines
 * `id:`, `event:`, `data:`; comments ignored). Resolves once the response headers are in, i.e. once
 * the hub follows the filter. `replay`: sends a Last-Event-ID of an earlier broker run, so the hub
 * first replays its whole history (everything since the broker started). Its own connection (no
 * keep-alive pool), destroyed in teardown, so the broker's HTTP listener can close at once.
 */
export async function openSse(t: Teardown, httpPort: number, filter: string, opts: { replay?: boolean; onEvent?: (e: SseEvent) => void } = {}): Promise<{ events: SseEvent[] }> {
  const events: SseEvent[] = [];
  const headers: Record<string, string> = opts.replay ? { 'last-event-id': '0-0' } : {};
  const req = http.get({ host: '127.0.0.1', port: httpPort, path: `/sse?topic=${encodeURIComponent(filter)}`, headers, agent: false });
  t.teardown(() => req.destroy());
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  if (res.statusCode !== 200) throw new Error(`/sse answered ${res.statusCode}`);
  res.setEncoding('utf8');
  let buf = '';
  let cur: Partial<SseEvent> & { lines: string[] } = { lines: [] };
  res.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line === '') {
        if (cur.event !== undefined) {
          const e = { id: cur.id, event: cur.event, data: cur.lines.join('\n') };
          events.push(e);
          opts.onEvent?.(e);
        }
        cur = { lines: [] };
      } else if (line.startsWith('id: ')) cur.id = line.slice(4);
      else if (line.startsWith('event: ')) cur.event = line.slice(7);
      else if (line.startsWith('data: ')) cur.lines.push(line.slice(6));
    }
  });
  res.on('error', () => undefined); // destroyed in teardown
  return { events };
}
