/**
 * Detection in the broker (docs/detection.md): the detectors watch the capture stream and raise
 * alerts as capture events (`event.kind: alert`) that capture records like any other event, and
 * publish each on `$SYS/broker/alerts/<rule name>`. The broker wires it in one line:
 * `capture.subscribe(detection.observe, detection.observeNotice)`, the second taking publishes (and,
 * with no capture sink, the per-client events) as capture's notices (their facts, no event object).
 */
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { DetectConfig } from './config.js';
import type { AlertEvent } from './alert.js';
import { DetectionEngine, type EngineStats } from './engine.js';
import type { IndicatorSource } from './indicators.js';
import type { Observation } from './observation.js';

export type { AlertEvent } from './alert.js';
export { DetectionEngine } from './engine.js';
export { IndicatorList, IndicatorExchange } from './indicators.js';

/** Where alerts are published: one topic per rule. */
export const ALERT_TOPIC_PREFIX = '$SYS/broker/alerts/';

export interface DetectionDeps {
  /** Records an alert as a capture event (capture's `emit`); what it returns (the numbered event) is what is published. */
  raise(alert: AlertEvent): object | undefined | void;
  /** Publishes inside the broker (non-retained, QoS 0). */
  publish?(topic: string, payload: string): void;
  log: Logger;
  metrics?: Registry;
  /** Where the OpenCTI beat's indicator set is looked up at each match. */
  indicators?: IndicatorSource;
  /** How often suppressions due by the wall clock are ended with their summary (default 1 s). */
  tickMs?: number;
}

export interface Detection {
  /** One capture event; alerts and the broker's own events are ignored. Never throws. */
  observe: (event: unknown) => void;
  /** An event as capture's notice (its facts, no event object; capture.subscribe's `onNotice`). Never throws. */
  observeNotice: (notice: Observation) => void;
  stats(): EngineStats;
  /** The names of the rules switched on. */
  readonly rules: readonly string[];
  /** Ends the clock tick and raises the summaries of suppressions still running. Idempotent. */
  stop(): void;
}

/** Starts the detectors; a `detect_rule` naming an unknown rule or parameter, or a bad value, throws ConfigError. */
export function createDetection(config: DetectConfig, deps: DetectionDeps): Detection {
  const log = deps.log.child({ name: 'capture.detect' });
  const engine = new DetectionEngine({ config, indicators: () => deps.indicators?.current() });
  const counter = deps.metrics
    ? new Counter({
        name: 'mqprobe_detect_alerts_total',
        help: 'Alerts raised by the detectors (alert-summary included), by rule.',
        labelNames: ['rule', 'action'],
        registers: [deps.metrics],
      })
    : undefined;
  let errors = 0;

  const raise = (alerts: readonly AlertEvent[]) => {
    for (const a of alerts) {
      counter?.inc({ rule: a.rule.name, action: a.event.action });
      log.warn({ rule: a.rule.name, entity: a.mqprobe.detect.entity, action: a.event.action }, a.message);
      try {
        const recorded = deps.raise(a) ?? a;
        deps.publish?.(ALERT_TOPIC_PREFIX + a.rule.name, JSON.stringify(recorded));
      } catch (err) {
        log.error({ err: (err as Error).message, rule: a.rule.name }, 'could not deliver an alert');
      }
    }
  };

  const enabled = config.enabled && engine.rules.length > 0;
  let timer: NodeJS.Timeout | undefined;
  if (enabled) {
    timer = setInterval(() => raise(engine.advanceTo(Date.now())), deps.tickMs ?? 1000);
    timer.unref();
    log.info({ rules: engine.rules.map((r) => r.spec.name) }, 'detection started');
  }
  let stopped = !enabled;
  const processEvent = (event: unknown) => engine.process(event);
  const processNotice = (notice: Observation) => engine.processObservation(notice);
  /** One pass of the detectors over an event or a notice: no closure per call (a notice comes for every publish). */
  const guarded = <T>(run: (x: T) => readonly AlertEvent[], x: T) => {
    try {
      const alerts = run(x);
      if (alerts.length > 0) raise(alerts);
    } catch (err) {
      // a detector bug must cost detection, never the broker
      if (errors++ % 1000 === 0) log.error({ err: (err as Error).message }, 'a detector failed on an event');
    }
  };

  return {
    observe(event) {
      if (stopped) return;
      const kind = (event as { event?: { kind?: unknown } } | null)?.event?.kind;
      if (kind === 'alert') return;
      guarded(processEvent, event);
    },
    observeNotice(notice) {
      if (!stopped) guarded(processNotice, notice);
    },
    stats: () => ({ ...engine.stats }),
    rules: engine.rules.map((r) => r.spec.name),
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      raise(engine.flush());
    },
  };
}
