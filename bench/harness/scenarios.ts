/** Scenarios A–G of the comparison (and A5, C5): what load each runs, what it measures, and what must arrive. */
import type { ConnectResult, FlowJob, FlowResult, Job, JobResult, Watched } from './load/jobs.js';

export interface Profile {
  name: string;
  rounds: number;
  warmupMs: number;
  durationMs: number;
  /** Scenario D: idle connection counts. */
  idleClients: number[];
  /** Scenario E: clients per storm. */
  stormClients: number;
  /**
   * Scenario E: clients that connect and are closed before the measured storm (--storm-warmup), so that
   * a Node broker's code is compiled (V8's JIT) as in a broker that has been running; 0 measures a
   * broker fresh from its start.
   */
  stormWarmupClients: number;
  /** Scenario G: clients that reconnect at once after an outage. */
  reconnectClients: number;
  /** Quiet time around the memory readings of D. */
  settleMs: number;
}

export const PROFILES: Record<'quick' | 'full', Profile> = {
  quick: {
    name: 'quick',
    rounds: 1,
    warmupMs: 300,
    durationMs: 1500,
    idleClients: [500, 2000],
    stormClients: 1000,
    stormWarmupClients: 0,
    reconnectClients: 1000,
    settleMs: 500,
  },
  full: {
    name: 'full',
    rounds: 4,
    warmupMs: 1000,
    durationMs: 6000,
    // 50,000 uses several source addresses and a raised open-files limit (bench/harness/fd-limit.ts)
    idleClients: [2000, 5000, 10_000, 50_000],
    stormClients: 5000,
    stormWarmupClients: 0,
    reconnectClients: 10_000,
    settleMs: 2000,
  },
};

export interface Metric {
  key: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  pick(r: JobResult): number | undefined;
}

export interface JobContext {
  port: number;
  watch: Watched;
  clientPrefix: string;
  credentials: { username: string; password: string };
}

export interface ScenarioCase {
  /** Unique over all scenarios, e.g. `A`, `D-10000`. */
  id: string;
  scenario: string;
  /** A few words for the summary table. */
  short: string;
  title: string;
  /** The load is as much as the broker takes: a broker well below 100% CPU was held back by something else. */
  saturating: boolean;
  /** Clients log in with the bench user (the broker gets a password file). */
  auth: boolean;
  metrics: Metric[];
  job(ctx: JobContext): Job;
  /** Problems with the delivery counts; empty when everything arrived. */
  check(r: JobResult): string[];
}

export const PAYLOAD_BYTES = 64;
/**
 * End-to-end windows per publisher (messages sent but not yet seen by every subscriber). QoS 0: deep
 * enough that no broker waits on the loop (with Nagle on, as Mosquitto and Node have it by
 * default, a shallow window stalls on delayed ACKs). QoS 1: 4 × 100 stays below the 1,000 messages
 * Mosquitto and mqprobe queue per client (max_queued_messages) before they drop.
 */
export const QOS0_WINDOW = 1000;
export const QOS1_WINDOW = 100;
export const LATENCY_RATE = 10_000;
const CONNECT_CONCURRENCY = 100;

const flow = (r: JobResult) => (r.kind === 'flow' ? r : undefined);
const conn = (r: JobResult) => (r.kind === 'connect' ? r : undefined);

const throughput: Metric = {
  key: 'msg_per_s',
  label: 'delivered msg/s',
  unit: 'msg/s',
  better: 'higher',
  pick: (r) => flow(r)?.deliveredPerSec,
};
const latency = (q: 'p50' | 'p99' | 'p999', label: string): Metric => ({
  key: `${q}_ms`,
  label: `latency ${label}`,
  unit: 'ms',
  better: 'lower',
  pick: (r) => flow(r)?.latencyMs?.[q],
});

function checkFlow(r: JobResult): string[] {
  const f = r as FlowResult;
  const problems = [...f.errors];
  if (f.lost) problems.push(`${f.lost} of ${f.expected} messages lost`);
  if (f.misordered) problems.push(`${f.misordered} messages duplicated or out of order`);
  if (f.pubacks && f.pubacks !== f.published) problems.push(`${f.pubacks} PUBACKs for ${f.published} QoS 1 publishes`);
  if (!f.published) problems.push('nothing was published');
  return problems;
}

function checkConnect(r: JobResult): string[] {
  const c = r as ConnectResult;
  return c.connected === c.clients
    ? []
    : [`${c.connected} of ${c.clients} clients connected (${c.refused} refused, ${c.failed} failed)`, ...c.errors];
}

/** Cases run a second time with every client speaking MQTT 5.0 (issue 19: within 15 % of their 3.1.1 figures). */
const MQTT5_TWINS = ['A', 'C'];

/** The cases whose clients all speak MQTT 5: brokers without MQTT 5 (bare Aedes 1.2) sit them out. */
export const MQTT5_CASE_IDS = MQTT5_TWINS.map((id) => `${id}5`);
export const isMqtt5Case = (caseId: string) => MQTT5_CASE_IDS.includes(caseId);

/** The case over MQTT 5: id `<id>5`, charted in the same scenario beside its 3.1.1 case. */
function overMqtt5(sc: ScenarioCase): ScenarioCase {
  return {
    ...sc,
    id: `${sc.id}5`,
    short: `${sc.short}, MQTT 5`,
    title: `${sc.title}; every client MQTT 5.0`,
    job: (c) => ({ ...(sc.job(c) as FlowJob), protocolVersion: 5 }),
  };
}

export function scenarioCases(p: Profile): ScenarioCase[] {
  return cases311(p).flatMap((sc) => (MQTT5_TWINS.includes(sc.id) ? [sc, overMqtt5(sc)] : [sc]));
}

function cases311(p: Profile): ScenarioCase[] {
  const timing = { warmupMs: p.warmupMs, durationMs: p.durationMs, drainMs: 3000 };
  const base = { kind: 'flow' as const, payloadBytes: PAYLOAD_BYTES, ...timing };
  return [
    {
      id: 'A',
      scenario: 'A',
      short: 'QoS 0 fan-in 4 → 1',
      saturating: true,
      title: `QoS 0 fan-in: 4 publishers → 1 subscriber on bench/#, ${PAYLOAD_BYTES}-byte payloads`,
      auth: false,
      metrics: [throughput],
      job: (c) => ({
        ...base,
        port: c.port,
        watch: c.watch,
        clientPrefix: c.clientPrefix,
        qos: 0,
        publishers: 4,
        subscribers: 1,
        window: QOS0_WINDOW,
        rate: 0,
        latency: false,
      }),
      check: checkFlow,
    },
    {
      id: 'B',
      scenario: 'B',
      short: 'QoS 1 fan-in 4 → 1',
      saturating: true,
      title: `QoS 1 fan-in: 4 publishers → 1 subscriber (QoS 1), at most ${QOS1_WINDOW} messages per publisher outstanding end to end`,
      auth: false,
      metrics: [throughput],
      job: (c) => ({
        ...base,
        port: c.port,
        watch: c.watch,
        clientPrefix: c.clientPrefix,
        qos: 1,
        publishers: 4,
        subscribers: 1,
        window: QOS1_WINDOW,
        rate: 0,
        latency: false,
      }),
      check: checkFlow,
    },
    {
      id: 'C',
      scenario: 'C',
      short: 'QoS 0 fan-out 1 → 50',
      saturating: true,
      title: `QoS 0 fan-out: 1 publisher → 50 subscribers, ${PAYLOAD_BYTES}-byte payloads (deliveries/s summed over the subscribers)`,
      auth: false,
      metrics: [throughput],
      job: (c) => ({
        ...base,
        port: c.port,
        watch: c.watch,
        clientPrefix: c.clientPrefix,
        qos: 0,
        publishers: 1,
        subscribers: 50,
        window: QOS0_WINDOW,
        rate: 0,
        latency: false,
      }),
      check: checkFlow,
    },
    ...p.idleClients.map((n): ScenarioCase => ({
      id: `D-${n}`,
      scenario: 'D',
      short: `idle memory, ${n.toLocaleString('en-US')} clients`,
      saturating: false,
      title: `Memory per idle connection, ${n.toLocaleString('en-US')} clients (RSS growth ÷ clients)`,
      auth: false,
      metrics: [{ key: 'kb_per_conn', label: 'KiB per connection', unit: 'KiB', better: 'lower', pick: (r) => conn(r)?.perConnectionKb }],
      job: (c) => ({
        kind: 'connect',
        port: c.port,
        watch: c.watch,
        clientPrefix: c.clientPrefix,
        clients: n,
        concurrency: CONNECT_CONCURRENCY,
        settleMs: p.settleMs,
      }),
      check: checkConnect,
    })),
    ...[false, true].map((auth): ScenarioCase => ({
      id: auth ? 'E-password' : 'E-anonymous',
      scenario: 'E',
      short: `connection storm, ${auth ? 'password' : 'anonymous'}`,
      saturating: true,
      title: `Connection storm, ${p.stormClients.toLocaleString('en-US')} clients, ${CONNECT_CONCURRENCY} handshakes in flight, ${auth ? 'password (sha512-pbkdf2 file)' : 'anonymous'}`,
      auth,
      metrics: [{ key: 'connects_per_s', label: 'connects/s', unit: 'connects/s', better: 'higher', pick: (r) => conn(r)?.connectsPerSec }],
      job: (c) => ({
        kind: 'connect',
        port: c.port,
        watch: c.watch,
        clientPrefix: c.clientPrefix,
        clients: p.stormClients,
        concurrency: CONNECT_CONCURRENCY,
        settleMs: 200,
        warmupClients: p.stormWarmupClients,
        ...(auth ? c.credentials : {}),
      }),
      check: checkConnect,
    })),
    {
      id: 'G',
      scenario: 'G',
      short: `reconnect after an outage, ${p.reconnectClients.toLocaleString('en-US')} clients`,
      saturating: true,
      title: `Reconnect storm: ${p.reconnectClients.toLocaleString('en-US')} connected clients' sockets reset at once, all reconnecting at the same moment (time to all reconnected)`,
      auth: false,
      metrics: [
        {
          key: 'reconnect_s',
          label: 'seconds to all reconnected',
          unit: 's',
          better: 'lower',
          pick: (r) => (conn(r) ? conn(r)!.elapsedMs / 1000 : undefined),
        },
      ],
      job: (c) => ({
        kind: 'connect',
        port: c.port,
        watch: c.watch,
        clientPrefix: c.clientPrefix,
        clients: p.reconnectClients,
        concurrency: CONNECT_CONCURRENCY,
        settleMs: 500,
        reconnect: true,
      }),
      check: checkConnect,
    },
    {
      id: 'F',
      scenario: 'F',
      short: `latency at ${LATENCY_RATE.toLocaleString('en-US')} msg/s`,
      saturating: false,
      title: `Latency at a fixed offered load of ${LATENCY_RATE.toLocaleString('en-US')} msg/s, QoS 0, 1 publisher → 1 subscriber, sent in 1 ms ticks`,
      auth: false,
      metrics: [latency('p50', 'p50'), latency('p99', 'p99'), latency('p999', 'p99.9')],
      job: (c) => ({
        ...base,
        port: c.port,
        watch: c.watch,
        clientPrefix: c.clientPrefix,
        qos: 0,
        publishers: 1,
        subscribers: 1,
        window: 0,
        rate: LATENCY_RATE,
        latency: true,
      }),
      check: checkFlow,
    },
  ];
}

/** The connections a case holds open at once (D, E, G), for the open-files limit. */
export function connectionsOf(c: ScenarioCase): number {
  const job = c.job({ port: 0, watch: {} as JobContext['watch'], clientPrefix: '', credentials: { username: '', password: '' } });
  return job.kind === 'connect' ? job.clients : 0;
}

export const SCENARIO_NAMES: Record<string, string> = {
  A: 'QoS 0 fan-in',
  B: 'QoS 1 fan-in',
  C: 'QoS 0 fan-out',
  D: 'memory per idle connection',
  E: 'connection storm',
  F: 'latency at a fixed offered load',
  G: 'reconnect storm after an outage',
};
export const SCENARIO_IDS = Object.keys(SCENARIO_NAMES);
