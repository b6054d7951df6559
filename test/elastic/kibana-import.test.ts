/**
 * Kibana cannot run here: this replays the answers of Kibana's documented HTTP API
 * (GET /api/status, POST /api/saved_objects/_import) from a local server, to check the import
 * request mqprobe sends (multipart file field, kbn-xsrf, overwrite, space, credentials) and its errors.
 */
import t from 'tap';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { importSavedObjects } from '../../elastic/kibana.js';
import { kibanaNdjsonPath } from '../../elastic/assets.js';

interface Seen {
  method?: string;
  url?: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

async function replayKibana(
  t: { teardown(fn: () => unknown): void },
  version: string,
  importAnswer: { status: number; body: unknown },
): Promise<{ url: URL; seen: Seen[] }> {
  const seen: Seen[] = [];
  const srv = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.setHeader('content-type', 'application/json');
      if (req.url === '/api/status')
        return res.end(
          JSON.stringify({
            name: 'kibana',
            version: { number: version, build_flavor: 'default' },
            status: { overall: { level: 'available' } },
          }),
        );
      res.statusCode = importAnswer.status;
      res.end(JSON.stringify(importAnswer.body));
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  return { url: new URL(`http://127.0.0.1:${(srv.address() as { port: number }).port}`), seen };
}

t.test('imports the ndjson as a multipart file with kbn-xsrf, overwrite and the space', async (t) => {
  const { url, seen } = await replayKibana(t, '8.19.4', { status: 200, body: { success: true, successCount: 11, successResults: [] } });
  const r = await importSavedObjects({ url, headers: { authorization: 'Basic dTpw' }, space: 'ops' });
  t.equal(r.outcome, 'updated');
  t.match(r.detail, /11 saved objects imported/);
  const imp = seen.find((s) => s.method === 'POST')!;
  t.equal(imp.url, '/s/ops/api/saved_objects/_import?overwrite=true');
  t.equal(imp.headers['kbn-xsrf'], 'mqprobe');
  t.equal(imp.headers.authorization, 'Basic dTpw');
  const boundary = /boundary=(.+)$/.exec(imp.headers['content-type'] ?? '')?.[1];
  t.ok(boundary, 'multipart/form-data with a boundary');
  t.match(imp.body, /Content-Disposition: form-data; name="file"; filename="mqprobe\.ndjson"/);
  t.ok(imp.body.includes(readFileSync(kibanaNdjsonPath(), 'utf8')), 'the whole ndjson is sent');
  t.ok(imp.body.trimEnd().endsWith(`--${boundary}--`));
});

t.test('errors: per-object import errors, old Kibana, not Kibana, nothing listening', async (t) => {
  const failing = await replayKibana(t, '8.19.4', {
    status: 200,
    body: {
      success: false,
      successCount: 8,
      errors: [{ id: 'mqprobe-top-topics', type: 'lens', error: { type: 'unknown', message: 'bad lens' } }],
    },
  });
  await t.rejects(
    importSavedObjects({ url: failing.url, headers: {} }),
    /Kibana imported 8 objects and rejected 1: lens mqprobe-top-topics: bad lens/,
  );
  const old = await replayKibana(t, '8.4.0', { status: 200, body: {} });
  await t.rejects(importSavedObjects({ url: old.url, headers: {} }), /Kibana 8\.4\.0 .* too old .* needs Kibana 8\.9 or later/);
  const refused = await replayKibana(t, '8.19.4', {
    status: 403,
    body: { statusCode: 403, error: 'Forbidden', message: 'Unable to bulk_create index-pattern' },
  });
  await t.rejects(
    importSavedObjects({ url: refused.url, headers: {} }),
    /Kibana refused the import \(HTTP 403\): Unable to bulk_create index-pattern/,
  );

  const notKibana = http.createServer((_req, res) => res.end('hello'));
  await new Promise<void>((r) => notKibana.listen(0, '127.0.0.1', r));
  const port = (notKibana.address() as { port: number }).port;
  await t.rejects(importSavedObjects({ url: new URL(`http://127.0.0.1:${port}`), headers: {} }), /is not Kibana/);
  await new Promise<void>((r) => notKibana.close(() => r()));
  await t.rejects(importSavedObjects({ url: new URL(`http://127.0.0.1:${port}`), headers: {} }), /connection refused/);
});
