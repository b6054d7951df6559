import { ConfigError } from '../../broker/config/errors.js';
import type { KeySpec } from '../../broker/config/spec.js';
import type { BeatBlock } from '../../broker/config/types.js';

/** The remote API's endpoints, named as osquery's `--<name>_tls_endpoint` flags name them. */
export const OSQUERY_ENDPOINTS = ['enroll', 'config', 'logger', 'distributed_read', 'distributed_write'] as const;
export type OsqueryEndpoint = (typeof OSQUERY_ENDPOINTS)[number];

export interface OsqueryConfig {
  /** Extra paths per endpoint (`osquery_endpoint`), answered beside the built-in ones. */
  endpoints: Partial<Record<OsqueryEndpoint, string[]>>;
  port?: number;
  host: string;
  certfile?: string;
  keyfile?: string;
  enrollSecretFile?: string;
  configFile?: string;
  hostConfigDir?: string;
  queryTtlMs: number;
  maxBodyBytes: number;
}

export function defaultOsqueryConfig(): OsqueryConfig {
  return { endpoints: {}, host: '0.0.0.0', queryTtlMs: 3_600_000, maxBodyBytes: 16 * 1024 * 1024 };
}

export const osqueryKeys: KeySpec<OsqueryConfig>[] = [
  {
    key: 'osquery_listener',
    usage: '<port> [bind address]',
    doc: "The beat's own HTTPS listener for osquery's TLS remote API (osquery agents only speak TLS).",
    scope: 'beat',
    set(c, v) {
      v.count(1, 2);
      c.port = v.port(0);
      c.host = v.optionalWord(1) ?? '0.0.0.0';
    },
  },
  {
    key: 'osquery_certfile',
    usage: '<path>',
    doc: 'PEM server certificate (chain) of the osquery listener; agents check it against `--tls_server_certs`.',
    scope: 'beat',
    set(c, v) {
      c.certfile = v.count(1).path();
    },
  },
  {
    key: 'osquery_keyfile',
    usage: '<path>',
    doc: 'PEM private key of osquery_certfile.',
    scope: 'beat',
    set(c, v) {
      c.keyfile = v.count(1).path();
    },
  },
  {
    key: 'osquery_enroll_secret_file',
    usage: '<path>',
    doc: 'File holding the enroll secret (one line), the same the agents read with `--enroll_secret_path`. Read at each start; never logged.',
    scope: 'beat',
    set(c, v) {
      c.enrollSecretFile = v.count(1).path();
    },
  },
  {
    key: 'osquery_config_file',
    usage: '<path>',
    doc: 'The osquery configuration (JSON: options, schedule, packs) handed to agents on `/config`; read at each request, so edits apply without a restart. Without it agents get `{}`.',
    scope: 'beat',
    set(c, v) {
      c.configFile = v.count(1).path();
    },
  },
  {
    key: 'osquery_host_config_dir',
    usage: '<directory>',
    doc: 'Per-host overrides: `<directory>/<host identifier>.json` is laid over osquery_config_file for that host (options, schedule, packs, decorators, file_paths and events merged entry by entry; other keys replaced). Read at each request, so edits apply without a restart. Host identifiers that cannot be a file name get the default.',
    scope: 'beat',
    set(c, v) {
      c.hostConfigDir = v.count(1).path();
    },
  },
  {
    key: 'osquery_endpoint',
    usage: 'enroll | config | logger | distributed_read | distributed_write <path>',
    doc: "Also answer this endpoint on `<path>`, to match an agent's `--enroll_tls_endpoint`, `--config_tls_endpoint`, `--logger_tls_endpoint`, `--distributed_tls_read_endpoint` or `--distributed_tls_write_endpoint`. The built-in paths (`/enroll`, `/config`, `/log`, `/distributed/read`, `/distributed/write`, also under `/v1`, `/api/v1/osquery` and `/api/osquery`) stay.",
    scope: 'beat',
    repeatable: true,
    set(c, v) {
      v.count(2);
      const name = v.oneOf(OSQUERY_ENDPOINTS, 0);
      const path = v.word(1);
      if (!/^\/[A-Za-z0-9._~/-]{0,200}$/.test(path)) v.fail(`expected a URL path such as /osquery/enroll, got "${path}"`);
      (c.endpoints[name] ??= []).push(path);
    },
  },
  {
    key: 'osquery_query_ttl',
    usage: '<duration>',
    doc: 'How long a distributed query waits for its hosts to collect it (and then for their results).',
    default: '1h',
    scope: 'beat',
    set(c, v) {
      c.queryTtlMs = v.count(1).durationMs(0, { min: '1s' });
    },
  },
  {
    key: 'osquery_max_body',
    usage: '<size>',
    doc: 'Largest request body accepted, before and after gzip inflation (k/M suffixes); larger requests get 413.',
    default: '16M',
    scope: 'beat',
    set(c, v) {
      c.maxBodyBytes = v.count(1).bytes(0, { min: '1k', max: '256M' });
    },
  },
];

export function checkOsqueryConfig(cfg: OsqueryConfig, block: BeatBlock): void {
  const need: [unknown, string, string][] = [
    [cfg.port, 'osquery_listener', '<port> [bind address]'],
    [cfg.certfile, 'osquery_certfile', '<path>'],
    [cfg.keyfile, 'osquery_keyfile', '<path>'],
    [cfg.enrollSecretFile, 'osquery_enroll_secret_file', '<path>'],
  ];
  for (const [value, key, usage] of need) {
    if (value === undefined) throw new ConfigError(block.pos, key, `beat osquery needs ${key} ${usage}`);
  }
}
