import { ConfigError, type SourcePos } from '../broker/config/errors.js';
import { ValueReader } from '../broker/config/spec.js';
import type { DetectConfig } from './config.js';

/**
 * Rule parameters: each rule declares its own (name, kind, default, doc); `detect_rule <rule>
 * <param> <value>` lines are checked against the declarations when the detectors start, with
 * errors that name the file, line and key. docs/detection.md lists the same declarations.
 */
export type ParamKind = 'count' | 'number' | 'duration' | 'bytes' | 'list';

export interface ParamSpec {
  name: string;
  kind: ParamKind;
  /** As written in a config file, e.g. `60s`, `10`, `auto-`. */
  default: string;
  doc: string;
  /** Bounds for count/number/bytes (inclusive). */
  min?: number;
  max?: number;
}

export type RiskLevel = 'low' | 'medium' | 'high' | 'critical';

/** Elastic Security's risk scores for its four severities, so alerts sort with Kibana's own. */
export const RISK_SCORES: Record<RiskLevel, number> = { low: 21, medium: 47, high: 73, critical: 99 };

export interface RuleSpec {
  name: string;
  /** One sentence: `rule.description` of every alert of the rule. */
  description: string;
  /** What the alert is keyed and suppressed by. */
  entity: string;
  risk: RiskLevel;
  /** The weakest attack the defaults are meant to catch (docs/detection.md, bench/detect). */
  minimum: string;
  params: ParamSpec[];
}

/** Parameters every rule has. */
export const COMMON_PARAMS: ParamSpec[] = [
  {
    name: 'suppress',
    kind: 'duration',
    default: '5m',
    doc: 'After an alert, further alerts of this rule for the same entity are held back this long and then summarised in one `alert-summary`.',
  },
  {
    name: 'max_alerts',
    kind: 'count',
    default: '100',
    doc: 'Alerts of the rule per minute (event time), over all entities; beyond it alerts are held back and summarised in one `alert-summary` for the rule at the end of the minute, so a flood of random client ids or addresses cannot become a flood of alerts.',
  },
  {
    name: 'risk_score',
    kind: 'count',
    default: '(per rule)',
    doc: '`event.risk_score` and `event.severity` of the rule’s alerts (0–100).',
    min: 0,
    max: 100,
  },
];

/** Resolved parameter values of one rule: numbers (durations in ms, sizes in bytes) and lists. */
export class Params {
  constructor(
    readonly rule: string,
    private readonly values: Map<string, number | string[]>,
  ) {}

  num(name: string): number {
    const v = this.values.get(name);
    if (typeof v !== 'number') throw new Error(`rule ${this.rule} has no numeric parameter ${name}`);
    return v;
  }

  list(name: string): string[] {
    const v = this.values.get(name);
    if (!Array.isArray(v)) throw new Error(`rule ${this.rule} has no list parameter ${name}`);
    return v;
  }
}

export interface ResolvedRule {
  spec: RuleSpec;
  params: Params;
}

/** Reads one value as its kind; `key` is how errors name it (`detect_rule <rule> <param>`). */
function readValue(spec: ParamSpec, value: string, pos: SourcePos, key: string): number | string[] {
  const v = new ValueReader({ file: pos.file, line: pos.line, key, args: [value], rest: value });
  switch (spec.kind) {
    case 'count':
      return v.int(0, spec.min ?? 1, spec.max ?? 1e9);
    case 'number':
      return v.number(0, spec.min ?? 0, spec.max ?? 1e9);
    case 'bytes': {
      const n = v.bytes(0);
      if (n < (spec.min ?? 0) || n > (spec.max ?? 2 ** 40))
        v.fail(`expected a size in ${spec.min ?? 0}..${spec.max ?? 2 ** 40} bytes, got ${value}`);
      return n;
    }
    case 'duration': {
      const ms = v.durationMs(0);
      if (ms <= 0 && spec.min !== 0) v.fail(`expected a duration above 0, got ${value}`);
      return ms;
    }
    case 'list':
      return value === '-' || value === '' ? [] : value.split(',').filter((s) => s !== '');
  }
}

const BUILT_IN: SourcePos = { file: '<default>', line: 0 };

/**
 * The enabled rules with their parameters, from the `detect_rule` lines: unknown rules and
 * parameters, and bad values, are ConfigErrors naming file, line and key.
 */
export function resolveRules(specs: readonly RuleSpec[], config: DetectConfig): ResolvedRule[] {
  const byName = new Map(specs.map((s) => [s.name, s]));
  for (const [name, setting] of config.rules) {
    if (!byName.has(name))
      throw new ConfigError(setting.pos, 'detect_rule', `unknown rule "${name}"; the rules are ${[...byName.keys()].join(', ')}`);
  }
  const out: ResolvedRule[] = [];
  for (const spec of specs) {
    const setting = config.rules.get(spec.name);
    const declared = [...COMMON_PARAMS, ...spec.params];
    const values = new Map<string, number | string[]>();
    for (const p of declared) {
      const def = p.name === 'risk_score' ? String(RISK_SCORES[spec.risk]) : p.default;
      values.set(p.name, readValue(p, def, BUILT_IN, `detect_rule ${spec.name} ${p.name}`));
    }
    for (const [name, { value, pos }] of setting?.params ?? []) {
      const p = declared.find((d) => d.name === name);
      if (!p)
        throw new ConfigError(
          pos,
          'detect_rule',
          `rule ${spec.name} has no parameter "${name}"; its parameters are ${declared.map((d) => d.name).join(', ')}`,
        );
      values.set(name, readValue(p, value, pos, `detect_rule ${spec.name} ${name}`));
    }
    if (setting?.enabled === false) continue;
    out.push({ spec, params: new Params(spec.name, values) });
  }
  return out;
}

/**
 * Default `max_tracked` of the windowed counting rules: an entity's state only matters within
 * the window, so more entities than this active within one window are needed to push one out.
 */
export const WINDOWED = '20000';

/** The parameters of an "at least `threshold` events of one entity within `window`" rule (ThresholdCounter). */
export function thresholdParams(threshold: string, events: string, window: string, tracked: string, note = ''): ParamSpec[] {
  return [
    { name: 'threshold', kind: 'count', default: threshold, doc: `${events} that raise the alert.${note}` },
    { name: 'window', kind: 'duration', default: window, doc: 'Sliding window they must fall in.' },
    maxTrackedParam(tracked, WINDOWED),
  ];
}

/** The `max_tracked` parameter of a rule that keeps state per entity. */
export function maxTrackedParam(what: string, def = '100000'): ParamSpec {
  return { name: 'max_tracked', kind: 'count', default: def, doc: `${what} tracked at once; the least recently seen are forgotten first.` };
}
