/** The JSON the API answers (docs/webview.md). */
export interface Live {
  t: number;
  in_per_s: number;
  out_per_s: number;
  clients: number;
}
export interface Sink {
  name: string;
  queued: number;
  spool_bytes: number;
  delivered: number;
  dropped: number;
  failures: number;
}
export interface Beat {
  name: string;
  up: boolean;
  restarts: number;
  records: number;
}
export interface Alert {
  time: string;
  rule: string;
  entity: string;
  message: string;
  severity: number | null;
  client_id: string | null;
  evidence: string;
}
export interface Busy {
  topic: string;
  rate: number;
  retained: boolean;
  spark: number[];
}
export interface Tick {
  live: Live;
  clients: { connected: number; version: number };
  topics: { tracked: number; untracked: number; version: number };
  sinks: Sink[];
  beats: Beat[];
  alerts: Alert[];
  alerts_seq: number;
  busiest: Busy[];
}
export interface Client {
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
export interface ClientEvent {
  time: string;
  client_id: string;
  action: string;
  detail: string;
}
export interface TopicNode {
  name: string;
  path: string;
  topics: number;
  rate: number;
  retained: number;
  leaf: boolean;
}
export interface Health {
  live: Live;
  history: Live[];
  sinks: Sink[];
  beats: Beat[];
  sys: Record<string, string>;
}
export interface Ban {
  entity: string;
  until?: string;
  rule?: string;
  reason?: string;
}
