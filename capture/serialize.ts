import type { CaptureEvent } from './event.js';
import { toHicap } from './hicap.js';

/** JSON of the frozen parts events share (ecs, service, observer per listener): made once. */
const shared = new WeakMap<object, string>();

/**
 * One event as one JSON line (without the newline). Same output as JSON.stringify, but the frozen
 * objects many events share are serialised once: the capture path's budget is ~2 µs an event.
 */
export function ecsLine(e: CaptureEvent): string {
  let s = '{';
  for (const k in e) {
    const v = (e as Record<string, unknown>)[k];
    if (v === undefined) continue;
    let j: string | undefined;
    if (typeof v === 'object' && v !== null && Object.isFrozen(v)) {
      j = shared.get(v);
      if (j === undefined) {
        j = JSON.stringify(v);
        shared.set(v, j);
      }
    } else {
      j = JSON.stringify(v);
    }
    if (j === undefined) continue;
    s += `${s.length > 1 ? ',' : ''}${JSON.stringify(k)}:${j}`;
  }
  return `${s}}`;
}

/** HICAP line, or undefined for events the Flex4Apps format has no form for. */
export function hicapLine(e: CaptureEvent): string | undefined {
  const h = toHicap(e);
  return h && JSON.stringify(h);
}
