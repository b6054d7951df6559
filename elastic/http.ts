import http from 'node:http';
import https from 'node:https';

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

export interface HttpRequest {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** PEM CA bundle for https URLs. */
  ca?: string;
  timeoutMs?: number;
  /** Responses larger than this are cut off (an error): a wrong URL must not fill memory. */
  maxBytes?: number;
}

/**
 * One plain HTTP(S) request. Used where the product clients cannot be: probing which product
 * answers (the Elastic client refuses OpenSearch) and Kibana's multipart import API.
 */
export function httpRequest(req: HttpRequest): Promise<HttpResponse> {
  const { url, ca, timeoutMs = 30_000, maxBytes = 16 * 1024 * 1024 } = req;
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const r = mod.request(url, { method: req.method, headers: req.headers, ca, timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) {
          res.destroy(new Error(`response from ${url.origin} larger than ${maxBytes} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
    });
    r.on('timeout', () => r.destroy(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`)));
    r.on('error', reject);
    r.end(req.body);
  });
}
