import type { PayloadPolicy } from './config.js';
import { describe } from './describe.js';
import type { CaptureEvent } from './event.js';
import { applyPayloadPolicy } from './payload.js';

/**
 * What an event gets after it was recorded, off the hot path (the broker thread's flush, or the
 * capture thread): its time, the payload policy, its message. Fields already set are kept.
 */
export class Finisher {
  private lastMs = -1;
  private lastIso = '';

  constructor(private readonly payload: PayloadPolicy) {}

  finish(e: CaptureEvent, ms: number): void {
    if (!e['@timestamp']) e['@timestamp'] = this.iso(ms);
    if (e.mqtt?.payload !== undefined) applyPayloadPolicy(e.mqtt, this.payload);
    if (!e.message) e.message = describe(e);
  }

  /** `@timestamp` of a time. Events come in bursts within one millisecond: one ISO text per millisecond. */
  iso(ms: number): string {
    if (ms !== this.lastMs) {
      this.lastMs = ms;
      this.lastIso = new Date(ms).toISOString();
    }
    return this.lastIso;
  }
}
