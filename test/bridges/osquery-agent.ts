import https from 'node:https';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

export interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/**
 * One HTTPS POST as osquery's TLS plugins send it (JSON, optionally gzip), checked against the test CA:
 * the replayed wire format of an osquery agent (osqueryd itself cannot run here).
 */
export async function post(
  caCert: string,
  port: number,
  path: string,
  body: unknown,
  opts: { gzip?: boolean; raw?: Buffer } = {},
): Promise<Answer> {
  let data = opts.raw ?? Buffer.from(JSON.stringify(body));
  if (opts.gzip) data = gzipSync(data);
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (opts.gzip) headers['content-encoding'] = 'gzip';
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path, method: 'POST', headers, ca: readFileSync(caCert), servername: 'localhost', agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}
