import type { KeySpec } from '../config/spec.js';
import { readLegacySseToken } from '../http-tokens.js';

export interface SseConfig {
  /** Deprecated: one bearer token without a user (read by broker/http-auth.ts; it acts as the anonymous user). */
  tokenFile?: string;
  heartbeatMs: number;
  /** Messages kept for resuming with Last-Event-ID, bounded by count and by payload bytes. */
  history: number;
  historyBytes: number;
  /** Bytes queued for one client before it counts as too slow and is dropped. */
  clientBufferBytes: number;
}

export function defaultSseConfig(): SseConfig {
  return { heartbeatMs: 15_000, history: 10_000, historyBytes: 16 * 1024 * 1024, clientBufferBytes: 1024 * 1024 };
}

/** What the SSE keys write into (the broker config's `sse` section). */
export interface SseTarget {
  config: { sse?: SseConfig };
}
const sse = (t: SseTarget): SseConfig => (t.config.sse ??= defaultSseConfig());

/** The `http_sse_*` keys (global scope, next to `http_listener`). */
export const sseKeys: KeySpec<SseTarget>[] = [
  {
    key: 'http_sse_token_file',
    usage: '<file>',
    doc: 'Deprecated (use `http_token_file`): `/sse` then requires credentials, and this one token (the whole file, surrounding whitespace ignored) as `Authorization: Bearer` or `?access_token=` acts as the anonymous user, under the anonymous ACL, even where allow_anonymous is false.',
    scope: 'global',
    set(t, v) {
      const file = v.count(1).path();
      // checked here so that a bad file stops the broker at config load, naming the line; read again at start
      try {
        readLegacySseToken(file);
      } catch (err) {
        v.fail((err as Error).message);
      }
      sse(t).tokenFile = file;
    },
  },
  {
    key: 'http_sse_heartbeat',
    usage: '<duration>',
    doc: 'Interval of the comment lines `/sse` sends to keep idle connections open through proxies.',
    default: '15s',
    scope: 'global',
    set(t, v) {
      sse(t).heartbeatMs = v.count(1).durationMs(0, { min: '100ms', max: '1h' });
    },
  },
  {
    key: 'http_sse_history',
    usage: '<messages>',
    doc: 'Messages kept for SSE clients that reconnect with `Last-Event-ID`.',
    default: '10000',
    scope: 'global',
    set(t, v) {
      sse(t).history = v.count(1).int(0, 0, 10_000_000);
    },
  },
  {
    key: 'http_sse_history_bytes',
    usage: '<size>',
    doc: 'Upper bound of the payload bytes in the SSE history (k/M/G suffixes).',
    default: '16M',
    scope: 'global',
    set(t, v) {
      sse(t).historyBytes = v.count(1).bytes();
    },
  },
  {
    key: 'http_sse_client_buffer',
    usage: '<size>',
    doc: 'An SSE client that falls this many bytes behind is disconnected (it may reconnect with Last-Event-ID).',
    default: '1M',
    scope: 'global',
    set(t, v) {
      sse(t).clientBufferBytes = v.count(1).bytes(0, { min: '1k' });
    },
  },
];
