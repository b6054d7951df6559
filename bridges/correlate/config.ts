import type { KeySpec } from '../../broker/config/spec.js';
import { isValidTopic } from '../../broker/auth/topic-filter.js';
import type { CorrelatorLimits } from './correlator.js';

export interface CorrelateConfig extends CorrelatorLimits {
  /** On-demand osquery queries when an alert names a known host. */
  query: boolean;
  /** Alerts below this risk score ask no host (informational ones, e.g. new-network-process). */
  queryMinRisk: number;
  /** Least time between two on-demand queries to one host. */
  queryIntervalMs: number;
  /** Where the osquery beat takes distributed queries. */
  queryTopic: string;
}

export function defaultCorrelateConfig(): CorrelateConfig {
  return {
    skewMs: 30_000,
    windowMs: 120_000,
    socketTtlMs: 600_000,
    maxSockets: 100_000,
    maxSocketsPerHost: 10_000,
    maxPending: 50_000,
    query: true,
    queryMinRisk: 47,
    queryIntervalMs: 60_000,
    queryTopic: 'beats/osquery/query',
  };
}

export const correlateKeys: KeySpec<CorrelateConfig>[] = [
  {
    key: 'correlate_window',
    usage: '<duration>',
    doc: 'How long (from its arrival) a Zeek flow waits for an osquery socket row that explains it before a flow of a known host goes to `beats/correlate/unattributed`. Cover the osquery schedule interval and the result-log batching.',
    default: '2m',
    scope: 'beat',
    set(c, v) {
      c.windowMs = v.count(1).durationMs(0, { min: '1s', max: '1d' });
    },
  },
  {
    key: 'correlate_skew',
    usage: '<duration>',
    doc: "Clock difference tolerated between the sensor's and the hosts' clocks: a connected socket row matches a flow when its time lies within the flow's start and end widened by this.",
    default: '30s',
    scope: 'beat',
    set(c, v) {
      c.skewMs = v.count(1).durationMs(0, { min: '0s', max: '1h' });
    },
  },
  {
    key: 'correlate_socket_ttl',
    usage: '<duration>',
    doc: 'How long a socket row is kept after it was last seen, for flows whose conn record comes later (Zeek writes it when the connection ends); a snapshot that repeats the row keeps it.',
    default: '10m',
    scope: 'beat',
    set(c, v) {
      c.socketTtlMs = v.count(1).durationMs(0, { min: '1s', max: '1d' });
    },
  },
  {
    key: 'correlate_max_sockets',
    usage: '<count>',
    doc: 'Socket rows kept over all hosts; beyond it the least recently seen is dropped (`mqprobe_beat_correlate_events_total{event="socket-evicted-global"}`).',
    default: '100000',
    scope: 'beat',
    set(c, v) {
      c.maxSockets = v.count(1).int(0, 1, 10_000_000);
    },
  },
  {
    key: 'correlate_max_sockets_per_host',
    usage: '<count>',
    doc: 'Socket rows kept per host; beyond it that host\'s least recently seen is dropped (`…{event="socket-evicted-host"}`), so one busy or hostile host cannot push the others out.',
    default: '10000',
    scope: 'beat',
    set(c, v) {
      c.maxSocketsPerHost = v.count(1).int(0, 1, 10_000_000);
    },
  },
  {
    key: 'correlate_max_pending',
    usage: '<count>',
    doc: 'Flows waiting for a socket row; beyond it the oldest ends early (reported as unattributed with `correlate.reason: evicted` when it touches a known host).',
    default: '50000',
    scope: 'beat',
    set(c, v) {
      c.maxPending = v.count(1).int(0, 1, 10_000_000);
    },
  },
  {
    key: 'correlate_query',
    usage: 'on | off',
    doc: "When an alert (`$SYS/broker/alerts/#`) or a Zeek notice names an address of a host enrolled with the osquery beat, ask that host's agent which processes hold sockets to the other address (a distributed query), answer on `beats/correlate/query/<host>`.",
    default: 'on',
    scope: 'beat',
    set(c, v) {
      c.query = v.count(1).onOff();
    },
  },
  {
    key: 'correlate_query_min_risk',
    usage: '<0-100>',
    doc: "Only alerts with at least this `event.risk_score` ask a host (47: medium and above, so informational alerts such as new-network-process do not spend a host's query budget). Zeek notices always ask.",
    default: '47',
    scope: 'beat',
    set(c, v) {
      c.queryMinRisk = v.count(1).int(0, 0, 100);
    },
  },
  {
    key: 'correlate_query_interval',
    usage: '<duration>',
    doc: 'Least time between two on-demand queries to the same host; alerts in between are counted (`…{event="query-rate-limited"}`), not asked.',
    default: '1m',
    scope: 'beat',
    set(c, v) {
      c.queryIntervalMs = v.count(1).durationMs(0, { min: '0s', max: '1d' });
    },
  },
  {
    key: 'correlate_query_topic',
    usage: '<topic>',
    doc: "The osquery beat's distributed-query topic (`<its beat_topic_prefix>/query`).",
    default: 'beats/osquery/query',
    scope: 'beat',
    set(c, v) {
      const topic = v.count(1).word();
      if (!isValidTopic(topic) || topic.startsWith('$')) v.fail(`expected a topic without wildcards, got "${topic}"`);
      c.queryTopic = topic;
    },
  },
];
