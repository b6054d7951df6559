import type { CaptureEvent } from './event.js';
import { toHicap } from './hicap.js';

/**
 * One event as one JSON line (without the newline). Plain JSON.stringify: it yields one flat
 * string, where a hand-made string builder yields a rope of small pieces that costs far more in
 * garbage collection while the line waits in a sink queue (measured in bench/capture/path.ts).
 */
export function ecsLine(e: CaptureEvent): string {
  return JSON.stringify(e);
}

/** HICAP line, or undefined for events the Flex4Apps format has no form for. */
export function hicapLine(e: CaptureEvent): string | undefined {
  const h = toHicap(e);
  return h && JSON.stringify(h);
}
