import type { BeatDefinition } from '../contract.js';
import { checkOsqueryConfig, defaultOsqueryConfig, osqueryKeys, type OsqueryConfig } from './config.js';
import { OsqueryBridge } from './bridge.js';

export const osqueryBeat: BeatDefinition<OsqueryConfig> = {
  name: 'osquery',
  doc: "Serves osquery's TLS remote API on its own HTTPS listener: agents enroll with the enroll secret, fetch their config, send result logs (out on `beats/osquery/result/<query name>`, one message per row) and status logs (`beats/osquery/status/<host>`), and run distributed queries ordered by a publish on `beats/osquery/query`, with results on `beats/osquery/distributed/<query id>` (docs/beats.md).",
  keys: osqueryKeys,
  defaults: defaultOsqueryConfig,
  check: checkOsqueryConfig,
  create: (cfg, common) => new OsqueryBridge(cfg, common),
};
