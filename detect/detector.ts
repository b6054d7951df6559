import type { Observation } from './observation.js';
import type { Params, RuleSpec } from './params.js';
import type { IndicatorLookup } from './indicators.js';

/** The entities an alert names: `source.ip`, `user.name`, `mqtt.client_id`, `mqtt.topic`, `destination.ip`. */
export interface Entities {
  ip?: string;
  user?: string;
  clientId?: string;
  topic?: string;
  destinationIp?: string;
}

/** What a detector reports; the engine turns it into an alert (or counts it while suppressed). */
export interface Finding {
  /** The entity the finding is about, e.g. `ip 10.0.0.7`: suppression is per rule and key. */
  key: string;
  /** Event time of the event that completed the evidence, epoch ms. */
  time: number;
  /** One readable sentence (`message`). */
  message: string;
  entities: Entities;
  /** Counts, window, threshold, baseline, the triggering sequence numbers. */
  evidence: Record<string, unknown>;
  /** ECS `threat.indicator.*` of a threat-intel match. */
  indicator?: Record<string, unknown>;
}

export type Emit = (finding: Finding) => void;

export interface Detector {
  /** The `event.action` values this detector looks at. */
  readonly actions: readonly string[];
  observe(o: Observation): void;
}

export interface DetectorEnv {
  /** The OpenCTI indicator set, looked up at each match (the beat may start after the detectors). */
  indicators(): IndicatorLookup | undefined;
  /** When the client last connected (event time), if the engine still remembers it. */
  connectedAt(clientId: string): number | undefined;
}

export interface RuleDefinition {
  spec: RuleSpec;
  create(params: Params, emit: Emit, env: DetectorEnv): Detector;
}

/** Internal publishers (beats, capture's mqtt sink) use `$` client ids: no client rule applies to them. */
export function isInternal(clientId: string | undefined): boolean {
  return clientId !== undefined && clientId.charCodeAt(0) === 36; // '$'
}

/** `60000` → `60 s`, `300000` → `5 min`, for messages. */
export function humanWindow(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0 && ms >= 120_000) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}
