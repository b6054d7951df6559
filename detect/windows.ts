import { LRUCache } from 'lru-cache';

/**
 * Event-time window state for the detectors. Everything here is bounded: per-entity state by
 * the rule's threshold, and the number of entities by an LRU (`max_tracked`), so a flood of new
 * client ids, addresses or topics evicts the least recently seen ones instead of growing.
 */

const ONE = () => 1;

/**
 * An LRU map that remembers the key it last gave: a run of events of one entity (a publish
 * flood: thousands of one client, one topic) finds its state without the LRU's hash lookup and
 * reordering. The answer and the order are the LRU's own: the key last got is its most recent,
 * and stays so until another key is got or set (each of which forgets the remembered one).
 */
class TrackedMap<V extends NonNullable<unknown>> extends LRUCache<string, V> {
  private lastKey: string | undefined;
  private lastValue: V | undefined;

  override get(k: string, opts?: LRUCache.GetOptions<string, V, unknown>): V | undefined {
    if (k === this.lastKey && opts === undefined) return this.lastValue;
    const v = super.get(k, opts);
    this.lastKey = v === undefined ? undefined : k;
    this.lastValue = v;
    return v;
  }

  override set(k: string, v: V | undefined, opts?: LRUCache.SetOptions<string, V, unknown>): this {
    this.lastKey = undefined;
    return super.set(k, v, opts);
  }

  override delete(k: string): boolean {
    this.lastKey = undefined;
    return super.delete(k);
  }

  override pop(): V | undefined {
    this.lastKey = undefined;
    return super.pop();
  }

  override clear(): void {
    this.lastKey = undefined;
    super.clear();
  }
}

/**
 * Per-entity state with at most `max` entities, least recently used evicted first. Bounded by
 * `maxSize` (each entry size 1) rather than `max`: with `max` lru-cache preallocates its arrays
 * for the full count (about 24 MiB for a million), with `maxSize` they grow with what is tracked.
 */
export function trackedMap<V extends NonNullable<unknown>>(max: number): LRUCache<string, V> {
  return new TrackedMap<V>({ maxSize: max, sizeCalculation: ONE });
}

/** The entity's state, created on first sight. */
export function stateOf<V extends NonNullable<unknown>>(map: LRUCache<string, V>, key: string, create: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = create();
    map.set(key, v);
  }
  return v;
}

/**
 * Exact sliding-window count: the times and sequence numbers of the entity's last events within
 * the window, at most `cap` of them (the rule's threshold), so the evidence names exactly the
 * events that crossed it.
 */
export class WindowLog {
  private times: number[] = [];
  private seqs: number[] = [];

  /** Adds an event and returns how many lie within `window` ms up to `time` (at most cap). */
  add(time: number, seq: number, window: number, cap: number): number {
    const from = time - window;
    let drop = 0;
    while (drop < this.times.length && this.times[drop] <= from) drop++;
    if (this.times.length - drop + 1 > cap) drop = this.times.length + 1 - cap;
    if (drop > 0) {
      this.times.splice(0, drop);
      this.seqs.splice(0, drop);
    }
    this.times.push(time);
    this.seqs.push(seq);
    return this.times.length;
  }

  get first(): number {
    return this.times[0];
  }

  /** Sequence numbers of the events in the log (those with one). */
  sequences(): number[] {
    return this.seqs.filter((s) => s >= 0);
  }

  clear(): void {
    this.times = [];
    this.seqs = [];
  }
}

/**
 * Exact sliding-window distinct count (user names per address, filters per client): each item's
 * last time and sequence number, bounded by the rule's threshold. Expired items are only swept
 * when the count could reach the threshold, which keeps the common case to one Map lookup.
 */
export class DistinctWindow {
  private last = new Map<string, { time: number; seq: number }>();
  /** The item added last and its entry: a client publishing to one topic again and again finds it without a lookup. */
  private lastItem: string | undefined;
  private lastEntry: { time: number; seq: number } | undefined;

  /** Adds an item and returns the number of distinct items seen within `window` ms up to `time`. */
  add(item: string, time: number, seq: number, window: number, threshold: number): number {
    let e = item === this.lastItem ? this.lastEntry : this.last.get(item);
    if (e) {
      e.time = time;
      e.seq = seq;
    } else this.last.set(item, (e = { time, seq }));
    this.lastItem = item;
    this.lastEntry = e;
    if (this.last.size < threshold) return this.last.size;
    const from = time - window;
    for (const [k, v] of this.last) if (v.time <= from) this.last.delete(k);
    // the sweep may have taken the last item (a window shorter than a millisecond)
    if (!this.last.has(item)) this.lastItem = undefined;
    return this.last.size;
  }

  items(): string[] {
    return [...this.last.keys()];
  }

  /** Sequence numbers of each item's last event (those with one), in time order. */
  sequences(): number[] {
    return [...this.last.values()]
      .sort((a, b) => a.time - b.time)
      .map((v) => v.seq)
      .filter((s) => s >= 0);
  }

  clear(): void {
    this.last.clear();
    this.lastItem = undefined;
  }
}

export interface BaselineParams {
  /** Bucket length, ms. */
  bucket: number;
  /** EWMA weight of a completed bucket. */
  alpha: number;
  /** Completed buckets before the learned baseline is trusted. */
  warmup: number;
  /** A completed bucket is learned as at most `mean + clip × deviation`. */
  clip: number;
}

/** Sub-buckets of the sliding count: it lags a rate change by at most one of them (bucket / 5). */
const SLOTS = 5;

/**
 * A publish rate and its learned baseline, in O(1) memory: a sliding count over the last bucket
 * length from a ring of SLOTS sub-bucket counts (the sub-bucket leaving the window weighted by
 * the part of it still inside, as rate limiters do), and an EWMA of completed bucket counts with
 * an EWMA of absolute deviations. A completed bucket is clipped to `mean + clip × deviation`
 * before it is learned, so a flood cannot teach the baseline that floods are normal. Idle
 * buckets are learned as zeros in closed form, however long the gap.
 */
export class RateBaseline {
  start = -1;
  cur = 0;
  mean = 0;
  dev = 0;
  /** Completed buckets learned. */
  n = 0;
  /** Sequence number of the first event in the current bucket. */
  firstSeq = -1;
  /** Bucket start of the last alert (one alert per bucket at most). */
  alerted = -1;
  private ring = [0, 0, 0, 0, 0, 0];
  /** Sum of the ring. */
  private total = 0;
  private slot = 0;
  private slotStart = -1;
  /** The time of the last event when another one at that time moves neither bucket nor slot, else -1. */
  private still = -1;

  /** Counts one event at `time` and returns the sliding count over the last bucket length. */
  add(time: number, seq: number, p: BaselineParams): number {
    const len = p.bucket / SLOTS;
    // a flood brings thousands of events within one millisecond: only the first moves the window
    if (time !== this.still) this.moveTo(time, len, p);
    if (this.cur === 0) this.firstSeq = seq;
    this.cur++;
    this.ring[this.slot]++;
    this.total++;
    const oldest = this.ring[(this.slot + 1) % (SLOTS + 1)];
    return this.total - oldest * ((time - this.slotStart) / len);
  }

  /** Ends the buckets and sub-buckets that `time` is past. */
  private moveTo(time: number, len: number, p: BaselineParams): void {
    if (this.start < 0) this.start = this.slotStart = time - (time % p.bucket);
    const gone = Math.floor((time - this.start) / p.bucket);
    if (gone > 0) {
      this.learn(this.cur, p);
      this.learnZeros(gone - 1, p);
      this.cur = 0;
      this.start += gone * p.bucket;
    }
    const passed = Math.floor((time - this.slotStart) / len);
    if (passed > 0) {
      for (let k = 1; k <= Math.min(passed, SLOTS + 1); k++) {
        const i = (this.slot + k) % (SLOTS + 1);
        this.total -= this.ring[i];
        this.ring[i] = 0;
      }
      this.slot = (this.slot + passed) % (SLOTS + 1);
      this.slotStart += passed * len;
    }
    // checked, not assumed: with a sub-bucket of a fractional length the division may round up
    const still = this.start >= 0 && Math.floor((time - this.start) / p.bucket) === 0 && Math.floor((time - this.slotStart) / len) === 0;
    this.still = still ? time : -1;
  }

  private learn(x: number, p: BaselineParams): void {
    if (this.n < p.warmup) {
      // plain running mean while warming up: every bucket counts the same
      const k = this.n + 1;
      this.mean += (x - this.mean) / k;
      this.dev += (Math.abs(x - this.mean) - this.dev) / k;
    } else {
      const capped = Math.min(x, this.mean + p.clip * Math.max(this.dev, 1));
      this.dev += p.alpha * (Math.abs(capped - this.mean) - this.dev);
      this.mean += p.alpha * (capped - this.mean);
    }
    this.n++;
  }

  /** m empty buckets: stepwise during warm-up, then closed form of m EWMA steps with x = 0. */
  private learnZeros(m: number, p: BaselineParams): void {
    while (m > 0 && this.n < p.warmup) {
      this.learn(0, p);
      m--;
    }
    if (m <= 0) return;
    const keep = Math.pow(1 - p.alpha, m);
    this.dev = keep * this.dev + p.alpha * m * Math.pow(1 - p.alpha, m - 1) * this.mean;
    this.mean *= keep;
    this.n += m;
  }
}

/**
 * A topic's usual payload size: EWMA of log2(size + 1) and of its absolute deviation, learned
 * with the same clipping as RateBaseline (so a slow drift is followed and a sudden jump is not).
 */
export class SizeBaseline {
  mean = 0;
  dev = 0;
  n = 0;

  learn(logSize: number, alpha: number, warmup: number): void {
    if (this.n < warmup) {
      const k = this.n + 1;
      this.mean += (logSize - this.mean) / k;
      this.dev += (Math.abs(logSize - this.mean) - this.dev) / k;
    } else {
      const band = 3 * Math.max(this.dev, 0.25);
      const x = Math.min(Math.max(logSize, this.mean - band), this.mean + band);
      this.dev += alpha * (Math.abs(x - this.mean) - this.dev);
      this.mean += alpha * (x - this.mean);
    }
    this.n++;
  }
}

/** What a counting rule reports when an entity reaches its threshold. */
export interface CountEvidence {
  count: number;
  threshold: number;
  window_s: number;
  /** From the first to the last counted event. */
  span_s: number;
  sequences: number[];
  [more: string]: unknown;
}

/**
 * "At least `threshold` events of one entity within `window`": one WindowLog per entity. When
 * the threshold is reached the evidence is returned and the entity counts afresh, so a
 * suppressed repeat means another full threshold of events.
 */
export class ThresholdCounter {
  private readonly logs: LRUCache<string, WindowLog>;

  constructor(
    readonly threshold: number,
    readonly window: number,
    maxTracked: number,
  ) {
    this.logs = trackedMap(maxTracked);
  }

  /** From a rule's `threshold`, `window` and `max_tracked` (thresholdParams). */
  static of(p: { num(name: string): number }): ThresholdCounter {
    return new ThresholdCounter(p.num('threshold'), p.num('window'), p.num('max_tracked'));
  }

  hit(key: string, time: number, seq: number): CountEvidence | undefined {
    const log = stateOf(this.logs, key, () => new WindowLog());
    const count = log.add(time, seq, this.window, this.threshold);
    if (count < this.threshold) return undefined;
    const evidence = {
      count,
      threshold: this.threshold,
      window_s: this.window / 1000,
      span_s: (time - log.first) / 1000,
      sequences: log.sequences(),
    };
    log.clear();
    return evidence;
  }
}
