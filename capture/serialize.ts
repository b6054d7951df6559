import type { CaptureEvent } from './event.js';
import { toHicap } from './hicap.js';

/** Printable ASCII without `"` or `\`: JSON writes it as it is. */
const PLAIN = /^[ !#-[\]-~]*$/;

/** The JSON text of each object made with `fixed()`, written once, when a line first needs it ('' until then). */
const fragments = new WeakMap<object, string>();
/** `"key":` for every key seen (a few dozen: the event contract's field names). */
const keys = new Map<string, string>();

/**
 * Marks a value shared by many events (the observer, the service, a connection's source, the
 * category lists…) as never changing again: it is frozen all the way down and its JSON text is
 * written once, then spliced into every line that carries it.
 */
export function fixed<T extends object>(value: T): T {
  deepFreeze(value);
  // written lazily: with detection alone (no sink) a connection's identity is made for every
  // client of a connection storm and never serialised
  fragments.set(value, '');
  return value;
}

/** The text of a fixed() object, written the first time a line needs it. */
function fragment(v: object, ready: string): string {
  if (ready !== '') return ready;
  const text = JSON.stringify(v);
  fragments.set(v, text);
  return text;
}

function deepFreeze(v: object): void {
  for (const child of Object.values(v)) if (typeof child === 'object' && child !== null && !Object.isFrozen(child)) deepFreeze(child);
  Object.freeze(v);
}

/** Consecutive fields whose values never change (strings, numbers, fixed() objects) that many events share, and their text as one piece. */
export interface FixedRun {
  readonly keys: readonly string[];
  readonly values: readonly unknown[];
  readonly text: string;
}

/** Where an object keeps the run of its fields it was built with (a symbol: no JSON, no listener sees it as a field). */
export const RUN = Symbol('mqprobe.capture.fixedRun');

export type WithRun = { [RUN]?: FixedRun };

/** The run of these fields, in this order; undefined when a value could still change (an object not made with fixed()). */
export function fixedRun(fields: readonly (readonly [string, unknown])[]): FixedRun | undefined {
  if (fields.length === 0 || fields.some(([, v]) => typeof v === 'object' && v !== null && !fragments.has(v))) return undefined;
  return new Run(
    fields.map(([k]) => k),
    fields.map(([, v]) => v),
  );
}

/** A run whose text is written the first time a line needs it (see fixed()). */
class Run implements FixedRun {
  private written?: string;
  constructor(
    readonly keys: readonly string[],
    readonly values: readonly unknown[],
  ) {}

  get text(): string {
    return (this.written ??= this.keys.map((k, i) => key(k) + json(this.values[i])).join(','));
  }
}

/**
 * One event as one JSON line (without the newline), byte for byte what `JSON.stringify` writes
 * (test/capture/serialize.test.ts holds it to that), but faster for capture's events: the shared
 * parts made with `fixed()` are spliced in as ready text (a connection's whole identity — observer,
 * service, destination, source, network, tls, user — as one piece when the event carries its
 * run) and plain strings are quoted without escaping. JSON.stringify of an event is most of the
 * capture path's cost (bench/capture/path.ts).
 */
export function ecsLine(e: CaptureEvent): string {
  const line = json(e) as string;
  // a line waits in the sink queues; as one flat string it costs the garbage collector one object,
  // as the rope of pieces the concatenation made, dozens (reading a character flattens it)
  line.charCodeAt(0);
  return line;
}

function json(v: unknown): string | undefined {
  switch (typeof v) {
    case 'string':
      return PLAIN.test(v) ? `"${v}"` : JSON.stringify(v);
    case 'number':
      return Number.isFinite(v) ? `${v}` : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      const ready = fragments.get(v);
      if (ready !== undefined) return fragment(v, ready);
      const run = (v as WithRun)[RUN];
      if (run) return withRun(v as Record<string, unknown>, run);
      // arrays, Buffers, Dates and the like are rare in events: the native writer knows their rules
      if (Array.isArray(v) || typeof (v as { toJSON?: unknown }).toJSON === 'function') return JSON.stringify(v);
      let out = '';
      for (const k of Object.keys(v)) {
        const s = json((v as Record<string, unknown>)[k]);
        if (s === undefined) continue;
        out += (out === '' ? '{' : ',') + key(k) + s;
      }
      return out === '' ? '{}' : `${out}}`;
    }
    default:
      // undefined and functions are left out as JSON.stringify leaves them; a bigint throws as it does
      return JSON.stringify(v);
  }
}

/** An object with its run written as one piece where the fields still are as built. */
function withRun(e: Record<string, unknown>, run: FixedRun): string {
  const keys = Object.keys(e);
  let out = '';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    let s: string | undefined;
    if (k === run.keys[0] && intact(e, keys, i, run)) {
      s = run.text;
      i += run.keys.length - 1;
    } else {
      s = json(e[k]);
      if (s === undefined) continue;
      s = key(k) + s;
    }
    out += (out === '' ? '{' : ',') + s;
  }
  return `${out}}`;
}

function intact(e: Record<string, unknown>, keys: string[], at: number, run: FixedRun): boolean {
  for (let j = 0; j < run.keys.length; j++) if (keys[at + j] !== run.keys[j] || e[run.keys[j]] !== run.values[j]) return false;
  return true;
}

function key(k: string): string {
  let s = keys.get(k);
  if (s === undefined) {
    s = `${JSON.stringify(k)}:`;
    // keys come from the event contract; one from elsewhere (a beat's record) is not kept
    if (keys.size < 4096) keys.set(k, s);
  }
  return s;
}

/** The line writer of a capture_format. */
export function lineWriter(format: 'ecs' | 'hicap'): (e: CaptureEvent) => string | undefined {
  return format === 'hicap' ? hicapLine : ecsLine;
}

/** HICAP line, or undefined for events the Flex4Apps format has no form for. */
export function hicapLine(e: CaptureEvent): string | undefined {
  const h = toHicap(e);
  return h && JSON.stringify(h);
}
