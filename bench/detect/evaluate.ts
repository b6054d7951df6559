/**
 * Precision, recall, false alerts per hour and time to detect of every detector on a labelled
 * scenario (bench/detect/scenario.ts), with the default rule parameters.
 *
 *   npx tsx bench/detect/evaluate.ts [devices=1000] [hours=12] [seed=1]
 */
import { DetectionEngine, IndicatorList, type AlertEvent } from '../../detect/index.js';
import { RULE_SPECS } from '../../detect/rules/index.js';
import { buildScenario, INDICATORS, LEARNING, START, type Label } from './scenario.js';
import { buildSpecScenario, flattenSome, SPEC_LEARNING, SPEC_START } from './spec-scenario.js';
import { HOUR, type CaptureEvent } from './sim.js';

/** An alert about an attack may come after its last event (evidence completed late): this much. */
const LATE = 60_000;

export interface Scored {
  events: number;
  alerts: AlertEvent[];
  labels: Label[];
  hours: number;
  /** Alerts before this (the learning hour) are not scored. */
  scoredFrom: number;
}

function detectAll(stream: Iterable<CaptureEvent>): { events: number; alerts: AlertEvent[] } {
  const indicators = IndicatorList.parse(INDICATORS);
  const engine = new DetectionEngine({ indicators: () => indicators });
  const alerts: AlertEvent[] = [];
  let events = 0;
  for (const e of stream) {
    events++;
    alerts.push(...engine.process(e));
  }
  alerts.push(...engine.flush());
  return { events, alerts };
}

export function runScenario(devices: number, hours: number, seed: number, attacks: boolean): Scored {
  const { sim, labels } = buildScenario({ seed, devices, hours, attacks });
  return { ...detectAll(sim.run()), labels, hours, scoredFrom: START + LEARNING };
}

/** The second generator (bench/detect/spec-scenario.ts): another producer's events, attacks from public reports. */
export function runSpecScenario(devices: number, hours: number, seed: number, attacks: boolean): Scored {
  const { sim, labels } = buildSpecScenario({ seed, hours, nodes: Math.max(8, Math.round(devices / 10)), modems: devices, attacks });
  return { ...detectAll(flattenSome(sim.run())), labels, hours, scoredFrom: SPEC_START + SPEC_LEARNING };
}

const time = (a: AlertEvent) => Date.parse(a['@timestamp']);

function matches(a: AlertEvent, l: Label): boolean {
  const t = time(a);
  if (t < Math.floor(l.start) || t > l.end + LATE) return false; // @timestamp has whole milliseconds
  const e = l.entity;
  return (
    (e.ip !== undefined && a.source?.ip === e.ip) ||
    (e.clientId !== undefined && a.mqtt?.client_id === e.clientId) ||
    (e.user !== undefined && a.user?.name === e.user) ||
    (e.topic !== undefined && a.mqtt?.topic === e.topic)
  );
}

export interface RuleRow {
  rule: string;
  attacks: number;
  detected: number;
  alerts: number;
  truePositives: number;
  falseAlerts: number;
  ttdMedian?: number;
  ttdMax?: number;
  /** Attacks below the documented minimum (0.5×), and how many were caught anyway. */
  below: number;
  belowDetected: number;
}

/** Scores the raised alerts (summaries are not alerts of their own) after the learning hour. */
export function score(s: Scored): { rows: RuleRow[]; falsePerHour: number; unmatched: AlertEvent[] } {
  const raised = s.alerts.filter((a) => a.event.action === 'alert-raised' && time(a) >= s.scoredFrom);
  const unmatched: AlertEvent[] = [];
  const rows = RULE_SPECS.map((spec): RuleRow => {
    const labels = s.labels.filter((l) => l.kind === spec.name && l.intensity >= 1);
    const below = s.labels.filter((l) => l.kind === spec.name && l.intensity < 1);
    const mine = raised.filter((a) => a.rule.name === spec.name);
    const ttds: number[] = [];
    for (const l of labels) {
      const first = mine.find((a) => matches(a, l));
      if (first) ttds.push(Math.max(0, time(first) - l.due));
    }
    const fp = mine.filter((a) => !s.labels.some((l) => matches(a, l)));
    unmatched.push(...fp);
    ttds.sort((a, b) => a - b);
    return {
      rule: spec.name,
      attacks: labels.length,
      detected: ttds.length,
      alerts: mine.length,
      truePositives: mine.length - fp.length,
      falseAlerts: fp.length,
      ttdMedian: ttds.length ? ttds[Math.floor(ttds.length / 2)] : undefined,
      ttdMax: ttds.length ? ttds[ttds.length - 1] : undefined,
      below: below.length,
      belowDetected: below.filter((l) => mine.some((a) => matches(a, l))).length,
    };
  });
  return { rows, falsePerHour: unmatched.length / (s.hours - LEARNING / HOUR), unmatched }; // both generators learn for one hour
}

const ratio = (a: number, b: number) => (b === 0 ? '–' : (a / b).toFixed(2));
const secs = (ms?: number) => (ms === undefined ? '–' : `${(ms / 1000).toFixed(1)} s`);

export function table(rows: RuleRow[]): string {
  const out = [
    '| rule | attacks ≥ minimum | detected | recall | alerts | precision | false alerts | time to detect (median / max) | below minimum (0.5×): caught |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |',
  ];
  const below = (r: { below: number; belowDetected: number }) => (r.below ? `${r.belowDetected} of ${r.below}` : '–');
  for (const r of rows)
    out.push(
      `| ${r.rule} | ${r.attacks} | ${r.detected} | ${ratio(r.detected, r.attacks)} | ${r.alerts} | ${ratio(r.truePositives, r.alerts)} | ${r.falseAlerts} | ${secs(r.ttdMedian)} / ${secs(r.ttdMax)} | ${below(r)} |`,
    );
  const sum = (k: 'attacks' | 'detected' | 'alerts' | 'truePositives' | 'falseAlerts' | 'below' | 'belowDetected') =>
    rows.reduce((n, r) => n + r[k], 0);
  out.push(
    `| **all** | ${sum('attacks')} | ${sum('detected')} | ${ratio(sum('detected'), sum('attacks'))} | ${sum('alerts')} | ${ratio(sum('truePositives'), sum('alerts'))} | ${sum('falseAlerts')} | ${secs(Math.max(...rows.map((r) => r.ttdMax ?? 0)))} max | ${below({ below: sum('below'), belowDetected: sum('belowDetected') })} |`,
  );
  return out.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const spec = process.argv.includes('--spec');
  const [devices = 1000, hours = 12, seed = 1] = process.argv
    .slice(2)
    .filter((a) => a !== '--spec')
    .map(Number);
  const run = spec ? runSpecScenario : runScenario;
  const t0 = Date.now();
  if (spec) console.log('# second generator: from the MQTT specifications and public attack reports (bench/detect/spec-scenario.ts)\n');
  const mixed = run(devices, hours, seed, true);
  const s = score(mixed);
  console.log(
    `## attacks mixed into ${hours} h of ${devices} devices (seed ${seed}): ${mixed.events} events, ${mixed.labels.length} labelled attacks, ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
  );
  console.log(table(s.rows));
  console.log(`\nfalse alerts per hour (after the learning hour): ${s.falsePerHour.toFixed(2)}`);
  for (const a of s.unmatched.slice(0, 20)) console.log(`  unmatched: ${a['@timestamp']} ${a.message}`);
  const missed = mixed.labels.filter(
    (l) => l.intensity >= 1 && !mixed.alerts.some((a) => a.rule.name === l.kind && a.event.action === 'alert-raised' && matches(a, l)),
  );
  for (const l of missed.slice(0, 20))
    console.log(`  missed: ${l.kind} ×${l.intensity} ${JSON.stringify(l.entity)} at ${new Date(l.start).toISOString()}`);
  const normal = run(devices, hours, seed + 1, false);
  const n = score(normal);
  console.log(`\n## normal traffic only, ${hours} h of ${devices} devices (seed ${seed + 1}): ${normal.events} events`);
  console.log(
    `false alerts: ${n.unmatched.length} (${n.falsePerHour.toFixed(2)} per hour); expected informational alerts (new devices provisioned): ${n.rows.find((r) => r.rule === 'new-client-id')?.truePositives}`,
  );
  for (const a of n.unmatched.slice(0, 20)) console.log(`  false: ${a['@timestamp']} ${a.message}`);
}
