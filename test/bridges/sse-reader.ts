import type { Teardown } from '../helpers/broker.js';

export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/**
 * Opens mqprobe's `GET /sse?topic=<filter>` with fetch and parses the stream into events as they
 * come (lines `id:`, `event:`, `data:`; comments ignored). Resolves once the response headers are in,
 * i.e. once the hub follows the filter. Aborted in teardown.
 */
export async function openSse(t: Teardown, httpPort: number, filter: string): Promise<{ events: SseEvent[] }> {
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  const res = await fetch(`http://127.0.0.1:${httpPort}/sse?topic=${encodeURIComponent(filter)}`, { signal: abort.signal });
  if (res.status !== 200 || !res.body) throw new Error(`/sse answered ${res.status}`);
  const events: SseEvent[] = [];
  void (async () => {
    const decoder = new TextDecoder();
    let buf = '';
    let cur: Partial<SseEvent> & { lines: string[] } = { lines: [] };
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line === '') {
            if (cur.event !== undefined) events.push({ id: cur.id, event: cur.event, data: cur.lines.join('\n') });
            cur = { lines: [] };
          } else if (line.startsWith('id: ')) cur.id = line.slice(4);
          else if (line.startsWith('event: ')) cur.event = line.slice(7);
          else if (line.startsWith('data: ')) cur.lines.push(line.slice(6));
        }
      }
    } catch {
      // aborted in teardown
    }
  })();
  return { events };
}
