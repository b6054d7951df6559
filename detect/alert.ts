import type { Finding } from './detector.js';

/**
 * An alert: a capture event (docs/capture-events.md) with `event.kind: alert`. Capture adds what
 * every event has (`event.id`, `event.sequence`, `observer.*`, `ecs.version`) when it records it;
 * the replay prints it as built here.
 */
export type AlertEvent = {
  '@timestamp': string;
  message: string;
  event: {
    kind: 'alert';
    category: ['intrusion_detection'];
    type: ['info'];
    /** `alert-raised`, or `alert-summary` for the alerts held back by suppression. */
    action: 'alert-raised' | 'alert-summary';
    dataset: 'mqtt.capture';
    severity: number;
    risk_score: number;
    /** Summaries: how many alerts were held back. */
    count?: number;
  };
  rule: { name: string; description: string; ruleset: 'mqprobe' };
  source?: { ip: string };
  destination?: { ip: string };
  user?: { name: string };
  mqtt?: { client_id?: string; topic?: string };
  threat?: { indicator: Record<string, unknown> };
  mqprobe: {
    detect: {
      /** What the alert is about and is suppressed by, e.g. `ip 10.0.0.7`. */
      entity: string;
      evidence: Record<string, unknown>;
      suppress_s: number;
      /** Summaries: alerts held back, since when. */
      suppressed?: number;
      suppressed_since?: string;
    };
  };
};

export interface AlertRule {
  name: string;
  description: string;
  risk: number;
  suppressMs: number;
  /** Alerts per minute (event time) before the rest are held back and summarised for the whole rule. */
  maxAlerts: number;
}

export interface SummaryInfo {
  count: number;
  /** When the first alert (the one let through) was raised. */
  since: number;
  /** The summary's own time: the end of the suppression, or the flush. */
  at: number;
  /** Held back because the rule reached max_alerts in a minute (any entity), not by one entity's suppression. */
  overflow?: boolean;
}

export function buildAlert(rule: AlertRule, f: Finding, summary?: SummaryInfo): AlertEvent {
  const e = f.entities;
  const alert: AlertEvent = {
    '@timestamp': new Date(summary ? summary.at : f.time).toISOString(),
    message: summary
      ? `${rule.name}: ${summary.count} more alert${summary.count === 1 ? '' : 's'} ${summary.overflow ? `(over ${rule.maxAlerts} a minute)` : `for ${f.key}`} held back since ${new Date(summary.since).toISOString()}; the last: ${f.message}`
      : `${rule.name}: ${f.message}`,
    event: {
      kind: 'alert',
      category: ['intrusion_detection'],
      type: ['info'],
      action: summary ? 'alert-summary' : 'alert-raised',
      dataset: 'mqtt.capture',
      severity: rule.risk,
      risk_score: rule.risk,
    },
    rule: { name: rule.name, description: rule.description, ruleset: 'mqprobe' },
    mqprobe: {
      detect: { entity: summary?.overflow ? `rule ${rule.name}` : f.key, evidence: f.evidence, suppress_s: rule.suppressMs / 1000 },
    },
  };
  if (summary) {
    alert.event.count = summary.count;
    alert.mqprobe.detect.suppressed = summary.count;
    alert.mqprobe.detect.suppressed_since = new Date(summary.since).toISOString();
  }
  if (e.ip !== undefined) alert.source = { ip: e.ip };
  if (e.destinationIp !== undefined) alert.destination = { ip: e.destinationIp };
  if (e.user !== undefined) alert.user = { name: e.user };
  if (e.clientId !== undefined || e.topic !== undefined) {
    alert.mqtt = {};
    if (e.clientId !== undefined) alert.mqtt.client_id = e.clientId;
    if (e.topic !== undefined) alert.mqtt.topic = e.topic;
  }
  if (f.indicator) alert.threat = { indicator: f.indicator };
  return alert;
}
