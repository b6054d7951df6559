import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isJsonObject } from '../shared/json-object.js';

type ConfigObject = Record<string, unknown>;

/** osquery config sections whose entries are named: a host file adds or replaces entries, it does not replace the section. */
const NAMED_SECTIONS = new Set(['options', 'schedule', 'packs', 'decorators', 'file_paths', 'events']);

/** Host identifiers that can name a file; anything else (`..`, `/`, control characters) gets the default only. */
const FILE_SAFE_HOST = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;

async function readObject(path: string, what: string): Promise<ConfigObject> {
  const value = JSON.parse(await readFile(path, 'utf8')) as unknown;
  if (!isJsonObject(value)) throw new Error(`${what} is not a JSON object`);
  return value;
}

/** The default config with a host's overrides laid over it: named sections merged entry by entry, other keys replaced. */
export function mergeAgentConfig(base: ConfigObject, override: ConfigObject): ConfigObject {
  const out: ConfigObject = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const current = out[key];
    out[key] = NAMED_SECTIONS.has(key) && isJsonObject(current) && isJsonObject(value) ? { ...current, ...value } : value;
  }
  return out;
}

/**
 * What `/config` answers a host: `osquery_config_file` (or `{}`), with `<osquery_host_config_dir>/<host
 * identifier>.json` over it when that file exists. Both are read at each request, so edits apply
 * without a restart.
 */
export async function agentConfig(configFile: string | undefined, hostConfigDir: string | undefined, host: string): Promise<ConfigObject> {
  const base = configFile ? await readObject(configFile, 'osquery_config_file') : {};
  if (!hostConfigDir || !FILE_SAFE_HOST.test(host)) return base;
  const file = join(hostConfigDir, `${host}.json`);
  try {
    return mergeAgentConfig(base, await readObject(file, file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return base;
    throw err;
  }
}
