/**
 * Installs the elastic/ assets into one cluster, idempotently: every object mqprobe manages
 * carries a hash of its definition in `_meta`, so a second run with the same assets changes
 * nothing. Features the cluster lacks (ILM on OpenSearch, ingest processors or the stack's
 * `logs@*` templates on minimal builds, ML without a license) are skipped with a plain reason.
 */
import { createHash } from 'node:crypto';
import type { RestClient } from './connection.js';
import { ElasticError } from './connection.js';
import {
  COMPONENT,
  ILM_POLICY_NAME,
  PIPELINE_NAME,
  STACK_COMPONENTS,
  TEMPLATE_NAME,
  dataStreamName,
  mlJobs,
  readJsonAsset,
} from './assets.js';

export type Outcome = 'created' | 'updated' | 'unchanged' | 'skipped';

export interface StepResult {
  what: string;
  outcome: Outcome;
  detail?: string;
}

export interface InstallOptions {
  namespace: string;
  /** ILM: delete backing indices this long after rollover (`30d`, `12h`). */
  ilmDeleteAfter: string;
  progress?(step: StepResult): void;
}

export interface Capabilities {
  stackComponents: Set<string>;
  ingest: boolean;
  ilm: boolean;
  ml: { allowed: boolean; reason?: string };
}

type Json = Record<string, unknown>;

/** Canonical JSON (sorted keys), so the hash does not depend on key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Json)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export function definitionHash(body: unknown): string {
  return createHash('sha256').update(canonical(body)).digest('hex').slice(0, 16);
}

const DURATION = /^[1-9]\d{0,5}(d|h|m|s)$/;

export function validateDeleteAfter(v: string): string {
  if (!DURATION.test(v)) throw new ElasticError(`--ilm-delete-after: expected a duration such as 30d, 12h or 90m, got "${v}"`);
  return v;
}

export async function detectCapabilities(client: RestClient): Promise<Capabilities> {
  const stackComponents = new Set<string>();
  for (const name of STACK_COMPONENTS) {
    const r = await client.send('GET', `/_component_template/${encodeURIComponent(name)}`, undefined, { allow404: true });
    if (r.status === 200) stackComponents.add(name);
  }
  const nodes = await client.send<{ nodes?: Record<string, { ingest?: { processors?: { type: string }[] } }> }>(
    'GET',
    '/_nodes/ingest?filter_path=nodes.*.ingest.processors.type',
  );
  const perNode = Object.values(nodes.body.nodes ?? {});
  const needed = ['set', 'append'];
  const ingest = perNode.length > 0 && perNode.every((n) => needed.every((p) => n.ingest?.processors?.some((x) => x.type === p)));
  const ilm = client.info.product === 'elasticsearch' && (await optional(client, 'GET', '/_ilm/status'));
  return { stackComponents, ingest, ilm, ml: await mlAvailability(client) };
}

/** Whether an endpoint answers 200; endpoints of modules a build lacks answer 400/404/405. */
async function optional(client: RestClient, method: string, path: string): Promise<boolean> {
  try {
    return (await client.send(method, path, undefined, { allow404: true })).status === 200;
  } catch (e) {
    if (e instanceof ElasticError && e.status !== undefined && e.status >= 400 && e.status < 500 && e.status !== 401 && e.status !== 403)
      return false;
    throw e;
  }
}

const ML_LICENSES = new Set(['trial', 'platinum', 'enterprise']);

async function mlAvailability(client: RestClient): Promise<Capabilities['ml']> {
  if (client.info.product === 'opensearch') {
    return {
      allowed: false,
      reason: 'OpenSearch has no Elastic machine learning (its Anomaly Detection plugin uses other job definitions)',
    };
  }
  const lic = await client.send<{ license?: { type?: string; status?: string } }>('GET', '/_license', undefined, { allow404: true });
  const type = lic.body.license?.type ?? 'unknown';
  if (!ML_LICENSES.has(type) || lic.body.license?.status !== 'active') {
    return {
      allowed: false,
      reason: `anomaly detection needs a Platinum or Enterprise license or a trial; this cluster's license is "${type}"`,
    };
  }
  if (!(await optional(client, 'GET', '/_ml/info'))) return { allowed: false, reason: 'machine learning is not enabled on this cluster' };
  return { allowed: true };
}

interface Managed {
  what: string;
  getPath: string;
  putPath: string;
  body: Json;
  /** Where the definition hash lives in the body (default: `_meta.mqprobe_hash`). */
  hash?: { get(stored: Json): unknown; set(body: Json, hash: string): void };
  /** The stored definition from a GET answer. */
  stored(answer: Json): Json | undefined;
}

async function ensure(client: RestClient, m: Managed): Promise<StepResult> {
  const at = m.hash ?? metaHash();
  const hash = definitionHash(m.body);
  try {
    const existing = await client.send<Json>('GET', m.getPath, undefined, { allow404: true });
    const stored = existing.status === 200 ? m.stored(existing.body) : undefined;
    if (stored && at.get(stored) === at.get(withHash(m.body, at, hash))) return { what: m.what, outcome: 'unchanged' };
    await client.send('PUT', m.putPath, withHash(m.body, at, hash));
    return { what: m.what, outcome: stored ? 'updated' : 'created' };
  } catch (e) {
    if (e instanceof ElasticError) throw new ElasticError(`${m.what}: ${e.message}`, e.status);
    throw e;
  }
}

function withHash(body: Json, at: NonNullable<Managed['hash']>, hash: string): Json {
  const copy = structuredClone(body);
  at.set(copy, hash);
  return copy;
}

/** `_meta.mqprobe_hash` at the given path of the body. */
function metaHash(...path: string[]): NonNullable<Managed['hash']> {
  const meta = (b: Json) => {
    let o = b;
    for (const k of [...path, '_meta']) o = (o[k] ??= {}) as Json;
    return o;
  };
  return { get: (b) => meta(structuredClone(b)).mqprobe_hash, set: (b, h) => void (meta(b).mqprobe_hash = h) };
}

function componentTemplate(name: string, body: Json): Managed {
  const path = `/_component_template/${encodeURIComponent(name)}`;
  return {
    what: `component template ${name}`,
    getPath: path,
    putPath: path,
    body,
    stored: (a) => (a.component_templates as { component_template: Json }[] | undefined)?.[0]?.component_template,
  };
}

/** The index template's components, given what the cluster has. */
export function composedOf(caps: Capabilities): string[] {
  const template = readJsonAsset<{ composed_of: string[] }>('index', 'index-template.json');
  const useStack = caps.stackComponents.has('logs@mappings') && caps.stackComponents.has('ecs@mappings');
  return template.composed_of.filter((n) =>
    (STACK_COMPONENTS as readonly string[]).includes(n) ? caps.stackComponents.has(n) : n === COMPONENT.fallback ? !useStack : true,
  );
}

export async function install(client: RestClient, caps: Capabilities, o: InstallOptions): Promise<StepResult[]> {
  const results: StepResult[] = [];
  const report = (r: StepResult) => {
    results.push(r);
    o.progress?.(r);
  };

  if (caps.ilm) {
    const policy = readJsonAsset('ilm', 'policy.json') as { policy: { phases: { delete: { min_age: string } } } };
    policy.policy.phases.delete.min_age = validateDeleteAfter(o.ilmDeleteAfter);
    const path = `/_ilm/policy/${ILM_POLICY_NAME}`;
    report(
      await ensure(client, {
        what: `ILM policy ${ILM_POLICY_NAME} (delete after ${o.ilmDeleteAfter})`,
        getPath: path,
        putPath: path,
        body: policy as unknown as Json,
        hash: metaHash('policy'),
        stored: (a) => ((a[ILM_POLICY_NAME] as Json | undefined)?.policy ? { policy: (a[ILM_POLICY_NAME] as Json).policy } : undefined),
      }),
    );
  } else {
    report({
      what: `ILM policy ${ILM_POLICY_NAME}`,
      outcome: 'skipped',
      detail:
        client.info.product === 'opensearch'
          ? 'OpenSearch has no ILM; set retention with Index State Management (see docs/elastic.md)'
          : 'this cluster has no index lifecycle management',
    });
  }

  if (caps.ingest) {
    const path = `/_ingest/pipeline/${PIPELINE_NAME}`;
    report(
      await ensure(client, {
        what: `ingest pipeline ${PIPELINE_NAME}`,
        getPath: path,
        putPath: path,
        body: readJsonAsset('ingest', 'pipeline.json'),
        // OpenSearch pipelines take no _meta; both products keep an integer `version`.
        hash: { get: (b) => b.version, set: (b, h) => void (b.version = parseInt(h.slice(0, 7), 16)) },
        stored: (a) => a[PIPELINE_NAME] as Json | undefined,
      }),
    );
  } else {
    report({
      what: `ingest pipeline ${PIPELINE_NAME}`,
      outcome: 'skipped',
      detail: 'this cluster has no ingest processors (set, append); event.ingested will be missing',
    });
  }

  const components = composedOf(caps);
  if (components.includes(COMPONENT.fallback)) {
    report(await ensure(client, componentTemplate(COMPONENT.fallback, readJsonAsset('index', 'stack-fallback.json'))));
  }
  report(await ensure(client, componentTemplate(COMPONENT.mappings, readJsonAsset('index', 'mappings.json'))));
  const settings = readJsonAsset('index', 'settings.json') as { template: { settings: { index: Json } } };
  if (!caps.ingest) delete settings.template.settings.index.default_pipeline;
  if (!caps.ilm) delete settings.template.settings.index.lifecycle;
  report(await ensure(client, componentTemplate(COMPONENT.settings, settings as unknown as Json)));

  // The user's own component: created empty once, never overwritten.
  const custom = await client
    .send('PUT', `/_component_template/${COMPONENT.custom}?create=true`, readJsonAsset('index', 'custom.json'), { allow404: true })
    .then(
      () => 'created' as const,
      (e: unknown) => {
        if (e instanceof ElasticError && e.status === 400 && /already exists/.test(e.message)) return 'unchanged' as const;
        throw e;
      },
    );
  report({ what: `component template ${COMPONENT.custom} (yours to edit)`, outcome: custom });

  const template = { ...readJsonAsset('index', 'index-template.json'), composed_of: components };
  const templatePath = `/_index_template/${TEMPLATE_NAME}`;
  const t = await ensure(client, {
    what: `index template ${TEMPLATE_NAME} (${components.filter((c) => (STACK_COMPONENTS as readonly string[]).includes(c)).join(', ') || 'without the stack templates'})`,
    getPath: templatePath,
    putPath: templatePath,
    body: template,
    stored: (a) => (a.index_templates as { index_template: Json }[] | undefined)?.[0]?.index_template,
  });
  report(t);

  if (results.some((r) => r.outcome === 'updated')) report(await refreshDataStream(client, o.namespace));
  return results;
}

/**
 * An existing data stream keeps the mappings it was created with: apply the new field mappings to
 * its write index, or roll it over when they conflict, so the next event uses the new template.
 */
async function refreshDataStream(client: RestClient, namespace: string): Promise<StepResult> {
  const ds = dataStreamName(namespace);
  const what = `data stream ${ds}`;
  const mappings = (readJsonAsset('index', 'mappings.json') as { template: { mappings: Json } }).template.mappings;
  try {
    const r = await client.send('PUT', `/${ds}/_mapping?write_index_only=true`, { properties: mappings.properties }, { allow404: true });
    if (r.status === 404) return { what, outcome: 'skipped', detail: 'not created yet; the first event creates it from the template' };
    return { what, outcome: 'updated', detail: 'mappings of the write index updated' };
  } catch (e) {
    if (!(e instanceof ElasticError) || e.status !== 400) throw e;
    await client.send('POST', `/${ds}/_rollover`);
    return { what, outcome: 'updated', detail: 'rolled over (the new mappings conflict with the current write index)' };
  }
}

export async function installMlJobs(client: RestClient, caps: Capabilities, progress?: (s: StepResult) => void): Promise<StepResult[]> {
  const results: StepResult[] = [];
  for (const job of mlJobs()) {
    let r: StepResult;
    if (!caps.ml.allowed) {
      r = { what: `ML job ${job.job_id}`, outcome: 'skipped', detail: caps.ml.reason };
    } else {
      r = await installMlJob(client, job);
    }
    results.push(r);
    progress?.(r);
  }
  return results;
}

async function installMlJob(client: RestClient, job: ReturnType<typeof mlJobs>[number]): Promise<StepResult> {
  const what = `ML job ${job.job_id} with its datafeed`;
  const hash = definitionHash(job);
  const existing = await client.send<{ jobs?: { custom_settings?: Json }[] }>('GET', `/_ml/anomaly_detectors/${job.job_id}`, undefined, {
    allow404: true,
  });
  const stored = existing.status === 200 ? existing.body.jobs?.[0] : undefined;
  if (stored) {
    if (stored.custom_settings?.mqprobe_hash === hash) return { what, outcome: 'unchanged' };
    // A job's analysis cannot be changed in place; replacing it would throw its model away.
    return { what, outcome: 'unchanged', detail: 'exists with an older definition; delete the job and its datafeed to install this one' };
  }
  await client.send('PUT', `/_ml/anomaly_detectors/${job.job_id}`, {
    ...job.job,
    custom_settings: { managed_by: 'mqprobe', mqprobe_hash: hash },
  });
  await client.send('PUT', `/_ml/datafeeds/datafeed-${job.job_id}`, { ...job.datafeed, job_id: job.job_id });
  return { what, outcome: 'created', detail: `open it and start datafeed-${job.job_id} in Kibana (Machine Learning > Anomaly detection)` };
}
