/**
 * The files in elastic/ that go to the Elastic stack, and their names there. Everything that
 * installs or writes capture events takes its names from here.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DATASET = 'mqtt.capture';
export const INDEX_PATTERN = `logs-${DATASET}-*`;
export const TEMPLATE_NAME = `logs-${DATASET}`;
export const PIPELINE_NAME = `logs-${DATASET}`;
export const ILM_POLICY_NAME = `logs-${DATASET}`;
export const COMPONENT = {
  mappings: `logs-${DATASET}@mappings`,
  settings: `logs-${DATASET}@settings`,
  fallback: `logs-${DATASET}@stack-fallback`,
  custom: `logs-${DATASET}@custom`,
} as const;
/** The stack's own component templates, composed in when the cluster has them (Elasticsearch 8.x with x-pack). */
export const STACK_COMPONENTS = ['logs@mappings', 'logs@settings', 'ecs@mappings'] as const;

/** Elastic's rule for data stream namespaces: lowercase, no dash, at most 100 bytes. */
export function isValidNamespace(ns: string): boolean {
  return /^[a-z0-9_.]{1,100}$/.test(ns);
}

export function dataStreamName(namespace: string): string {
  return `logs-${DATASET}-${namespace}`;
}

/** elastic/ beside this module when run from source, or at the package root when run from dist/. */
export const assetDir: string = (() => {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [here, resolve(here, '..', '..', 'elastic')];
  const found = candidates.find((d) => existsSync(join(d, 'index', 'mappings.json')));
  if (!found) throw new Error(`mqprobe's elastic/ assets are missing (looked in ${candidates.join(', ')})`);
  return found;
})();

export function assetPath(...parts: string[]): string {
  return join(assetDir, ...parts);
}

export function readJsonAsset<T = Record<string, unknown>>(...parts: string[]): T {
  return JSON.parse(readFileSync(assetPath(...parts), 'utf8')) as T;
}

export interface MlJobAsset {
  job_id: string;
  job: Record<string, unknown>;
  datafeed: Record<string, unknown>;
}

export function mlJobs(): MlJobAsset[] {
  return readdirSync(assetPath('ml'))
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => readJsonAsset<MlJobAsset>('ml', f));
}

export function kibanaNdjsonPath(): string {
  return assetPath('kibana', 'mqprobe.ndjson');
}
