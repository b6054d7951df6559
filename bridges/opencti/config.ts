import { ConfigError } from '../../broker/config/errors.js';
import type { KeySpec } from '../../broker/config/spec.js';
import type { BeatBlock } from '../../broker/config/types.js';
import { urlValue } from '../shared/url-value.js';

export interface OpenCtiConfig {
  url?: URL;
  tokenFile?: string;
  cafile?: string;
  /** Events larger than this are counted and skipped. */
  maxEventBytes: number;
}

export function defaultOpenCtiConfig(): OpenCtiConfig {
  return { maxEventBytes: 16 * 1024 * 1024 };
}

export const openCtiKeys: KeySpec<OpenCtiConfig>[] = [
  {
    key: 'opencti_url',
    usage: '<stream URL>',
    doc: 'The OpenCTI live stream to follow, e.g. `https://opencti:8080/stream` (the global stream) or `https://opencti:8080/stream/<stream id>`.',
    scope: 'beat',
    set(c, v) {
      c.url = urlValue(v, ['http:', 'https:'], 'https://opencti:8080/stream', 'opencti_token_file');
    },
  },
  {
    key: 'opencti_token_file',
    usage: '<path>',
    doc: "File holding the OpenCTI API token (a user's token with access to the stream), sent as `Authorization: Bearer`. Read at each (re)start; never logged.",
    scope: 'beat',
    set(c, v) {
      c.tokenFile = v.count(1).path();
    },
  },
  {
    key: 'opencti_cafile',
    usage: '<path>',
    doc: 'PEM CA certificates to verify an https:// OpenCTI (default: the system trust store).',
    scope: 'beat',
    set(c, v) {
      c.cafile = v.count(1).path();
    },
  },
  {
    key: 'opencti_max_event_bytes',
    usage: '<bytes>',
    doc: 'Largest stream event the beat takes (k/M/G suffixes); larger ones are counted (`mqprobe_beat_opencti_events_total{outcome="oversized"}`) and skipped.',
    default: '16M',
    scope: 'beat',
    set(c, v) {
      c.maxEventBytes = v.count(1).bytes(0, { min: '1k' });
    },
  },
];

export function checkOpenCtiConfig(c: OpenCtiConfig, block: BeatBlock): void {
  if (!c.url)
    throw new ConfigError(
      block.pos,
      'opencti_url',
      'beat opencti needs opencti_url (the live stream URL, e.g. https://opencti:8080/stream)',
    );
  if (!c.tokenFile)
    throw new ConfigError(block.pos, 'opencti_token_file', 'beat opencti needs opencti_token_file (a file holding the API token)');
  if (c.cafile && c.url.protocol !== 'https:')
    throw new ConfigError(block.pos, 'opencti_cafile', 'opencti_cafile needs an https:// opencti_url');
}
