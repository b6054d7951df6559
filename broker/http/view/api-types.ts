/**
 * The JSON of the web view's API (docs/webview.md): shared by the broker side and the page
 * (broker/http/view/ui/), so it imports nothing.
 */

/** One client as /api/clients answers it. */
export interface ClientView {
  id: string;
  user: string | null;
  address: string | null;
  listener: string;
  protocol: number | null;
  since: string;
  in_per_s: number;
  out_per_s: number;
  subscriptions: number;
  queued_bytes: number;
}

/** A capture sink as the Health view shows it. */
export interface SinkView {
  name: string;
  queued: number;
  spool_bytes: number;
  delivered: number;
  dropped: number;
  failures: number;
}

/** A beat, `connection` bridge or Kafka bridge as the Health view shows it (broker/status.ts). */
export interface PartView {
  kind: 'beat' | 'bridge' | 'kafka-bridge';
  name: string;
  /** The part's own word: running, restarting, connected, waiting, delivering, failing, … */
  state: string;
  /** Records it moved since the start (a beat's records, a bridge's messages in and out, Kafka records delivered). */
  records: number;
  /** Over the last tick. */
  records_per_s: number;
  /** The last error, without credentials, at most 300 characters. */
  last_error: string | null;
  last_error_at: string | null;
}

export interface ClientEvent {
  time: string;
  client_id: string;
  action: string;
  detail: string;
}

export interface AlertView {
  time: string;
  rule: string;
  entity: string;
  message: string;
  severity: number | null;
  client_id: string | null;
  /** The alert's evidence as JSON text, cut at 2,000 characters. */
  evidence: string;
}

export interface HealthSample {
  t: number;
  in_per_s: number;
  out_per_s: number;
  clients: number;
}

export interface TopicNode {
  /** The level's name, and the topic up to it. */
  name: string;
  path: string;
  /** Tracked topics at or below it. */
  topics: number;
  /** Messages per second at or below it. */
  rate: number;
  /** Tracked topics at or below it whose last message was retained. */
  retained: number;
  /** True when the path itself is a tracked topic. */
  leaf: boolean;
}

export interface BusyTopic {
  topic: string;
  rate: number;
  retained: boolean;
  /** Oldest first. */
  spark: number[];
}

/** One `tick` event of /api/stream. */
export interface Tick {
  live: HealthSample;
  clients: { connected: number; version: number };
  topics: { tracked: number; untracked: number; version: number };
  sinks: SinkView[];
  beats: PartView[];
  /** `connection` bridges and Kafka bridges. */
  bridges: PartView[];
  alerts: AlertView[];
  alerts_seq: number;
  busiest: BusyTopic[];
}

/** /api/health. */
export interface Health {
  live: HealthSample;
  history: HealthSample[];
  sinks: SinkView[];
  beats: PartView[];
  bridges: PartView[];
  sys: Record<string, string>;
  viewers: number;
}
