import { gunzipSync } from 'node:zlib';
import { JsonDepthError, parseBoundedJson } from '../../broker/bounded-json.js';

/** A request the beat refuses; `status` is the HTTP answer (400, 413, 415). The message names no content. */
export class BodyError extends Error {
  override name = 'BodyError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Decodes an osquery remote-API request body: optional gzip (`--logger_tls_compress`), inflated with a
 * hard output cap so a gzip bomb stops at `maxBytes`, then one JSON object.
 */
export function decodeBody(raw: Buffer, contentEncoding: string | undefined, maxBytes: number): Record<string, unknown> {
  if (raw.length > maxBytes) throw new BodyError(413, `request body over ${maxBytes} bytes`);
  let bytes = raw;
  const encoding = (contentEncoding ?? 'identity').trim().toLowerCase();
  if (encoding === 'gzip') {
    try {
      bytes = gunzipSync(raw, { maxOutputLength: maxBytes });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
        throw new BodyError(413, `inflated request body over ${maxBytes} bytes`);
      throw new BodyError(400, 'request body is not valid gzip');
    }
  } else if (encoding !== 'identity') {
    throw new BodyError(415, `content-encoding ${JSON.stringify(encoding.slice(0, 40))} is not supported (gzip or none)`);
  }
  let value: unknown;
  try {
    value = parseBoundedJson(bytes);
  } catch (err) {
    if (err instanceof JsonDepthError) throw new BodyError(400, `request body is ${err.message}`);
    throw new BodyError(400, 'request body is not valid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new BodyError(400, 'request body must be a JSON object');
  return value as Record<string, unknown>;
}
