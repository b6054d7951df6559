/**
 * Imports elastic/kibana/mqprobe.ndjson (data view + "MQTT broker" dashboard) through Kibana's
 * saved-objects import API, overwriting earlier copies of the same objects.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ElasticError, networkProblem } from './connection.js';
import { httpRequest } from './http.js';
import { kibanaNdjsonPath } from './assets.js';
import type { StepResult } from './install.js';

export interface KibanaTarget {
  url: URL;
  /** The same Authorization header as for Elasticsearch (Kibana accepts both forms). */
  headers: Record<string, string>;
  ca?: string;
  /** Kibana space; the default space when unset. */
  space?: string;
}

/** Oldest Kibana that imports the objects (their typeMigrationVersion). */
const MIN_KIBANA = [8, 9];

async function kibanaVersion(k: KibanaTarget): Promise<string> {
  const url = new URL('api/status', k.url.href.endsWith('/') ? k.url : new URL(`${k.url.href}/`));
  let res;
  try {
    res = await httpRequest({
      method: 'GET',
      url,
      headers: { accept: 'application/json', ...k.headers },
      ca: k.ca,
      timeoutMs: 15_000,
      maxBytes: 4 * 1024 * 1024,
    });
  } catch (e) {
    throw networkProblem(k.url, e);
  }
  if (res.status === 401) throw new ElasticError(`Kibana at ${k.url.origin} rejected the credentials (HTTP 401)`, 401);
  let version: string | undefined;
  try {
    version = (JSON.parse(res.text) as { version?: { number?: string } }).version?.number;
  } catch {
    // not JSON: reported below
  }
  if (!version || res.headers['x-elastic-product'] === 'Elasticsearch') {
    throw new ElasticError(`${k.url.href} is not Kibana (GET /api/status gave HTTP ${res.status} without a Kibana version)`);
  }
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major < MIN_KIBANA[0] || (major === MIN_KIBANA[0] && minor < MIN_KIBANA[1])) {
    throw new ElasticError(
      `Kibana ${version} at ${k.url.origin} is too old for mqprobe's dashboard: it needs Kibana ${MIN_KIBANA.join('.')} or later`,
    );
  }
  return version;
}

export async function importSavedObjects(k: KibanaTarget): Promise<StepResult> {
  const version = await kibanaVersion(k);
  const ndjson = readFileSync(kibanaNdjsonPath());
  const boundary = `mqprobe-${randomBytes(12).toString('hex')}`;
  const body = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="mqprobe.ndjson"\r\nContent-Type: application/ndjson\r\n\r\n`,
    ),
    ndjson,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const base = k.url.href.endsWith('/') ? k.url.href : `${k.url.href}/`;
  const url = new URL(`${k.space ? `s/${encodeURIComponent(k.space)}/` : ''}api/saved_objects/_import?overwrite=true`, base);
  let res;
  try {
    res = await httpRequest({
      method: 'POST',
      url,
      headers: {
        ...k.headers,
        'kbn-xsrf': 'mqprobe',
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'content-length': String(body.length),
      },
      body,
      ca: k.ca,
      timeoutMs: 60_000,
    });
  } catch (e) {
    throw networkProblem(k.url, e);
  }
  let answer: {
    success?: boolean;
    successCount?: number;
    errors?: { id: string; type: string; error?: { type?: string; message?: string } }[];
    message?: string;
  } = {};
  try {
    answer = JSON.parse(res.text);
  } catch {
    // reported below
  }
  if (res.status !== 200)
    throw new ElasticError(`Kibana refused the import (HTTP ${res.status})${answer.message ? `: ${answer.message}` : ''}`, res.status);
  if (!answer.success) {
    const first = answer.errors?.slice(0, 3).map((e) => `${e.type} ${e.id}: ${e.error?.message ?? e.error?.type ?? 'error'}`) ?? [];
    throw new ElasticError(
      `Kibana imported ${answer.successCount ?? 0} objects and rejected ${answer.errors?.length ?? '?'}: ${first.join('; ')}`,
    );
  }
  return {
    what: `Kibana ${version}: data view and dashboard "MQTT broker"`,
    outcome: 'updated',
    detail: `${answer.successCount} saved objects imported (overwrite)`,
  };
}
