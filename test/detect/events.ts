import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../app/config.js';
import { tempDir } from '../helpers/tmp.js';
/** Capture events in the DESIGN.md contract shape, for feeding the detectors directly. */
import { DetectionEngine, type AlertEvent } from '../../detect/index.js';
import type { EngineOptions } from '../../detect/engine.js';

export const T0 = Date.parse('2026-03-02T10:00:00.000Z');

export interface Fields {
  ip?: string;
  user?: string;
  clientId?: string;
  topic?: string;
  size?: number;
  reason?: string;
  reasonCode?: number;
  subscriptions?: { topic: string; qos: number; granted_qos: number }[];
  payload?: string;
}

/** Numbers events like one broker instance does. */
export class Stream {
  private seq = 0;

  event(action: string, time: number, f: Fields = {}): Record<string, unknown> {
    const mqtt: Record<string, unknown> = {};
    if (f.clientId !== undefined) mqtt.client_id = f.clientId;
    if (f.topic !== undefined) mqtt.topic = f.topic;
    if (f.size !== undefined) mqtt.payload_size = f.size;
    if (f.reasonCode !== undefined) mqtt.reason_code = f.reasonCode;
    if (f.subscriptions) mqtt.subscriptions = f.subscriptions;
    if (f.payload !== undefined) mqtt.payload = f.payload;
    return {
      '@timestamp': new Date(time).toISOString(),
      event: { kind: 'event', action, dataset: 'mqtt.capture', sequence: ++this.seq, ...(f.reason ? { reason: f.reason } : {}) },
      ...(f.ip ? { source: { ip: f.ip, port: 40000 } } : {}),
      ...(f.user ? { user: { name: f.user } } : {}),
      mqtt,
    };
  }
}

/** An engine plus everything it raised, in order. */
export class Harness {
  readonly engine: DetectionEngine;
  readonly alerts: AlertEvent[] = [];
  readonly stream = new Stream();

  constructor(opts: EngineOptions = {}) {
    this.engine = new DetectionEngine(opts);
  }

  send(action: string, time: number, f: Fields = {}): readonly AlertEvent[] {
    const out = this.engine.process(this.stream.event(action, time, f));
    this.alerts.push(...out);
    return out;
  }

  flush(): void {
    this.alerts.push(...this.engine.flush());
  }

  raised(rule?: string): AlertEvent[] {
    return this.alerts.filter((a) => a.event.action === 'alert-raised' && (rule === undefined || a.rule.name === rule));
  }
}

/** The `detect` settings of config lines (`detect_rule …`), read as the broker reads them. */
export function detectConfig(lines: string) {
  const file = join(tempDir(), 'mqprobe.conf');
  writeFileSync(file, `listener 0 127.0.0.1\n${lines}\n`);
  return loadConfig(file).detect;
}
