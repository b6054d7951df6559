import type { BeatDefinition } from '../contract.js';
import { checkOpenCtiConfig, defaultOpenCtiConfig, openCtiKeys, type OpenCtiConfig } from './config.js';
import { OpenCtiBridge } from './bridge.js';

export const openCtiBeat: BeatDefinition<OpenCtiConfig> = {
  name: 'opencti',
  doc: 'Follows an OpenCTI live stream (Server-Sent Events, bearer token), publishes every create, update, delete and merge on `beats/opencti/<event>/<STIX type>`, resumes after the last event it handled, and keeps the indicator set (addresses, domains, URLs, file hashes) the threat-intel detector matches traffic against (docs/beats.md).',
  keys: openCtiKeys,
  defaults: defaultOpenCtiConfig,
  check: checkOpenCtiConfig,
  create: (cfg) => new OpenCtiBridge(cfg),
};
