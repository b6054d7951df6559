import { TimeHeap } from './heap.js';
import { Random } from './random.js';

/** What a simulated capture event says (the scenario's actors fill in these). */
export interface EventFields {
  ip?: string;
  user?: string;
  clientId?: string;
  topic?: string;
  size?: number;
  qos?: number;
  /** `event.reason` of a refusal or a disconnect. */
  reason?: string;
  reasonCode?: number;
  subscriptions?: { topic: string; qos: number; granted_qos: number }[];
  /** `mqtt.payload` (utf8), as with `capture_payload full`. */
  payload?: string;
}

export type CaptureEvent = Record<string, unknown>;

const OUTCOME: Record<string, string> = { 'connection-refused': 'failure', 'publish-denied': 'failure', 'subscription-denied': 'failure' };

/**
 * A discrete-event simulation in event time: actors schedule closures with `at()`; `run()` pops
 * them in time order and yields the capture events they emit, numbered by `event.sequence` as
 * the broker numbers them.
 */
export class Sim {
  readonly rng: Random;
  now: number;
  private heap = new TimeHeap<() => void>();
  private outbox: CaptureEvent[] = [];
  private seq = 0;
  private stampMs = NaN;
  private stamp = '';

  constructor(
    seed: number,
    readonly start: number,
    readonly end: number,
  ) {
    this.rng = new Random(seed);
    this.now = start;
  }

  /** Runs fn at `time` (not before now; nothing after the end of the scenario). */
  at(time: number, fn: () => void): void {
    if (time > this.end) return;
    this.heap.push(Math.max(time, this.now), fn);
  }

  emit(action: string, f: EventFields): void {
    if (this.now !== this.stampMs) {
      this.stampMs = this.now;
      this.stamp = new Date(Math.round(this.now)).toISOString();
    }
    const e: CaptureEvent = {
      '@timestamp': this.stamp,
      event: {
        kind: 'event',
        action,
        outcome: OUTCOME[action] ?? 'success',
        dataset: 'mqtt.capture',
        sequence: ++this.seq,
        ...(f.reason ? { reason: f.reason } : {}),
      },
    };
    if (f.ip) e.source = { ip: f.ip, port: 1024 + Math.floor(this.rng.next() * 60000) };
    if (f.user) e.user = { name: f.user };
    const mqtt: Record<string, unknown> = {};
    if (f.clientId) mqtt.client_id = f.clientId;
    if (f.topic) mqtt.topic = f.topic;
    if (f.size !== undefined) mqtt.payload_size = f.size;
    if (f.qos !== undefined) mqtt.qos = f.qos;
    if (f.reasonCode !== undefined) mqtt.reason_code = f.reasonCode;
    if (f.subscriptions) mqtt.subscriptions = f.subscriptions;
    if (f.payload !== undefined) mqtt.payload = f.payload;
    e.mqtt = mqtt;
    this.outbox.push(e);
  }

  *run(): Generator<CaptureEvent> {
    for (;;) {
      const next = this.heap.pop();
      if (!next) return;
      this.now = next.time;
      next.value();
      if (this.outbox.length > 0) {
        const batch = this.outbox;
        this.outbox = [];
        yield* batch;
      }
    }
  }
}

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;

/** 0..1 over the day, low at night and high in the afternoon (UTC hours as local time). */
export function dayLevel(time: number): number {
  const h = (time % (24 * HOUR)) / HOUR;
  return 0.5 - 0.5 * Math.cos((2 * Math.PI * (h - 3)) / 24);
}
