/** What the coordinator asks a load generator process to do, and what it answers (over the IPC channel). */

/** Processes whose CPU time and memory the generator samples at the edges of its measuring window. */
export interface Watched {
  broker: number;
  /** The json_lines receiver of the capture variant. */
  receiver?: number;
  /** Clock ticks per second of /proc/<pid>/stat (getconf CLK_TCK). */
  clockTicks: number;
}

/** Publishers → broker → subscribers, every message numbered so losses, duplicates and reordering show. */
export interface FlowJob {
  kind: 'flow';
  port: number;
  qos: 0 | 1;
  publishers: number;
  subscribers: number;
  payloadBytes: number;
  /**
   * Closed loop: a publisher sends while fewer than `window` of its messages are not yet seen by
   * every subscriber (end to end, so a broker that acknowledges and drops gains nothing).
   */
  window: number;
  /** Open loop instead: this many messages per second over all publishers, sent in 1 ms ticks (0: closed loop). */
  rate: number;
  warmupMs: number;
  durationMs: number;
  /** How long the drain may go without progress before the rest counts as lost. */
  drainMs: number;
  /** Record the latency of every message sent inside the measuring window. */
  latency: boolean;
  clientPrefix: string;
  watch: Watched;
  /** MQTT 5 instead of 3.1.1 (cases A5, C5 and bench/engine/; readPublish reads both, the payload sits at the end). */
  protocolVersion?: 4 | 5;
}

/** Many clients connecting (and staying connected): connection rate, and memory per idle connection. */
export interface ConnectJob {
  kind: 'connect';
  port: number;
  clients: number;
  /** Handshakes (TCP connect → CONNACK) in flight at once. */
  concurrency: number;
  username?: string;
  password?: string;
  /** Quiet time before the baseline and after the last CONNACK before memory is read. */
  settleMs: number;
  clientPrefix: string;
  watch: Watched;
  /** MQTT 5 instead of 3.1.1 (bench/engine/ only). */
  protocolVersion?: 4 | 5;
  /**
   * A reconnect storm: the clients connect (not measured), their sockets are all reset at once and
   * every client reconnects at the same moment; what is measured is that second storm.
   */
  reconnect?: boolean;
  /** Clients (other ids) that connect the same way and are closed before the measured storm (--storm-warmup). */
  warmupClients?: number;
}

export type Job = FlowJob | ConnectJob;

/** CPU time over the measuring window as % of one core (100 = one core saturated). */
export interface CpuShare {
  generator: number;
  broker?: number;
  receiver?: number;
  /** % of the window the broker's main thread was runnable but waiting for its CPU (taken by other processes). */
  brokerWait?: number;
  /** The same for the load generator's main thread. */
  generatorWait?: number;
}

export interface Percentiles {
  p50: number;
  p99: number;
  p999: number;
  max: number;
  samples: number;
}

export interface FlowResult {
  kind: 'flow';
  published: number;
  /** published × subscribers */
  expected: number;
  delivered: number;
  lost: number;
  /** Messages that arrived again or out of order (never expected from one publisher on one topic). */
  misordered: number;
  /** PUBACKs the publishers received (QoS 1). */
  pubacks: number;
  windowMs: number;
  deliveredPerSec: number;
  publishedPerSec: number;
  /** Milliseconds from the publisher's write to the subscriber's read. */
  latencyMs?: Percentiles;
  cpu: CpuShare;
  brokerRssKb?: number;
  errors: string[];
}

export interface ConnectResult {
  kind: 'connect';
  clients: number;
  connected: number;
  refused: number;
  failed: number;
  elapsedMs: number;
  connectsPerSec: number;
  rssBeforeKb?: number;
  rssAfterKb?: number;
  perConnectionKb?: number;
  cpu: CpuShare;
  errors: string[];
  /** Clients of the warm-up (--storm-warmup) that got their CONNACK before being closed. */
  warmupConnected?: number;
}

export type JobResult = FlowResult | ConnectResult;

export type GeneratorMessage =
  | { type: 'progress'; phase: string; done?: number; total?: number }
  | { type: 'result'; result: JobResult }
  | { type: 'error'; message: string };
