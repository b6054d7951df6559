import type { LRUCache } from 'lru-cache';
import { defaultDetectConfig, type DetectConfig } from './config.js';
import type { AlertEvent, AlertRule } from './alert.js';
import type { Detector, DetectorEnv } from './detector.js';
import type { IndicatorLookup } from './indicators.js';
import { observe, type Observation } from './observation.js';
import { resolveRules, type ResolvedRule } from './params.js';
import { RULES, RULE_SPECS } from './rules/index.js';
import { Suppressor } from './suppress.js';
import { trackedMap } from './windows.js';

export interface EngineOptions {
  /** `detect_rule` settings; defaults when absent. Bad rules or parameters throw ConfigError. */
  config?: DetectConfig;
  /** The indicator set (looked up at every match, so it may appear later); none: no intel matches. */
  indicators?: () => IndicatorLookup | undefined;
}

export interface EngineStats {
  /** Events given to process(). */
  events: number;
  /** Of those, not capture events (no object, no action or no time): skipped. */
  invalid: number;
  alerts: number;
  summaries: number;
}

const byName = new Map(RULES.map((r) => [r.spec.name, r]));
const NONE: readonly AlertEvent[] = Object.freeze([]);

/**
 * The detectors as one pure function of the event stream: `process(event)` returns the alerts the
 * event raises (or whose suppression it ends). Time is event time (`@timestamp`), never the wall
 * clock, so the same events always give the same alerts, live or replayed.
 */
export class DetectionEngine {
  readonly rules: ResolvedRule[];
  readonly stats: EngineStats = { events: 0, invalid: 0, alerts: 0, summaries: 0 };
  private readonly dispatch = new Map<string, Detector[]>();
  private readonly suppressor = new Suppressor();
  private readonly sessions?: LRUCache<string, number>;
  private out: AlertEvent[] = [];
  /** Latest event time seen; earlier events are taken as happening now. */
  private now = -Infinity;

  constructor(opts: EngineOptions = {}) {
    this.rules = resolveRules(RULE_SPECS, opts.config ?? defaultDetectConfig());
    const sessionsNeeded = this.rules
      .filter((r) => r.spec.name === 'publish-rate' || r.spec.name === 'topic-rate')
      .map((r) => r.params.num('max_tracked'));
    if (sessionsNeeded.length > 0) this.sessions = trackedMap<number>(Math.max(...sessionsNeeded));
    const indicators = opts.indicators ?? (() => undefined);
    const env: DetectorEnv = { indicators, connectedAt: (id) => this.sessions?.get(id) };
    for (const r of this.rules) {
      const alertRule: AlertRule = {
        name: r.spec.name,
        description: r.spec.description,
        risk: r.params.num('risk_score'),
        suppressMs: r.params.num('suppress'),
        maxAlerts: r.params.num('max_alerts'),
      };
      const detector = byName.get(r.spec.name)!.create(r.params, (f) => this.suppressor.offer(alertRule, f, this.out), env);
      for (const action of detector.actions) {
        const list = this.dispatch.get(action) ?? [];
        list.push(detector);
        this.dispatch.set(action, list);
      }
    }
  }

  /** One capture event (an ECS object as capture emits it or the file sink wrote it). */
  process(event: unknown): readonly AlertEvent[] {
    this.stats.events++;
    const o = observe(event);
    if (!o) {
      this.stats.invalid++;
      return NONE;
    }
    return this.run(o);
  }

  /** One event already read into its observation (capture's notices are); the engine may move its time forward. */
  processObservation(o: Observation): readonly AlertEvent[] {
    this.stats.events++;
    return this.run(o);
  }

  /** Ends the suppressions due by `time` (a live clock tick); the stream's own events do this too. */
  advanceTo(time: number): readonly AlertEvent[] {
    if (time > this.now) this.now = time;
    this.suppressor.due(this.now, this.out);
    return this.take();
  }

  /** Summaries of every suppression still running (end of a replay, shutdown). */
  flush(): readonly AlertEvent[] {
    this.suppressor.flush(this.now, this.out);
    return this.take();
  }

  private run(o: Observation): readonly AlertEvent[] {
    if (o.time < this.now) o.time = this.now;
    else this.now = o.time;
    this.suppressor.due(this.now, this.out);
    if (o.action === 'client-connected' && o.clientId !== undefined) this.sessions?.set(o.clientId, o.time);
    const detectors = this.dispatch.get(o.action);
    if (detectors) for (const d of detectors) d.observe(o);
    return this.take();
  }

  private take(): readonly AlertEvent[] {
    if (this.out.length === 0) return NONE;
    const alerts = this.out;
    this.out = [];
    for (const a of alerts) {
      if (a.event.action === 'alert-raised') this.stats.alerts++;
      else this.stats.summaries++;
    }
    return alerts;
  }
}
