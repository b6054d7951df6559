/**
 * Open web views for bench/webview/fanin.ts, in a process of their own (as browsers would be), so
 * that their work does not slow the load generator's publishers and subscriber. Each view does what
 * an open page on the Clients tab does: it holds `/api/stream` open and, on each tick, fetches its
 * page of `/api/clients` (`--stream-only`: the stream alone). Prints `ready` once every stream is open.
 *
 *   npx tsx bench/webview/viewers.ts <http base> <views> [--stream-only]
 */
import http from 'node:http';

const [base, count] = process.argv.slice(2);
const STREAM_ONLY = process.argv.includes('--stream-only');

function openViewer(): Promise<void> {
  return new Promise((opened) => {
    const req = http.get(`${base}/api/stream`, { agent: false }, (res) => {
      opened();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (!STREAM_ONLY && chunk.includes('event: tick'))
          http.get(`${base}/api/clients?limit=50`, (r) => r.resume()).on('error', () => undefined);
      });
    });
    req.on('error', (err) => {
      console.error(`a view failed: ${err.message}`);
      process.exit(1);
    });
  });
}

await Promise.all(Array.from({ length: Number(count) }, openViewer));
console.log('ready');
