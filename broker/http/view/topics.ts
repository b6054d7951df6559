import type { BusyTopic, TopicNode } from './api-types.js';

/** Samples in a topic's sparkline (one per tick). */
export const SPARK_SAMPLES = 30;

interface TopicRow {
  count: number;
  /** count at the last tick. */
  prev: number;
  /** Messages per second over the last tick. */
  rate: number;
  /** The last message on it was retained with a payload (an empty retained message clears it). */
  retained: boolean;
  /** Rates of the last ticks, a ring written at `sparkHead`. */
  spark: Float32Array;
  sparkHead: number;
  /** Ticks in a row without a message: a topic idle for a whole sparkline may be evicted. */
  idleTicks: number;
}

/**
 * Message counts per topic, for the view's topic tree. Bounded: at most `maxTopics` topics are
 * tracked; a new topic beyond that is counted in `untracked` until a tick evicts topics that have
 * been idle for a whole sparkline. Broker-own topics (`$…`) are not tracked.
 */
export class TopicStats {
  private readonly rows = new Map<string, TopicRow>();
  /** Messages on topics that found no room. */
  untracked = 0;
  /** Changes when topics are added or evicted, so a viewer knows when to fetch the tree again. */
  version = 0;

  constructor(private readonly maxTopics: number) {}

  get size(): number {
    return this.rows.size;
  }

  /** One message: a Map lookup and a few writes (this runs for every publish). */
  count(topic: string, retain: boolean, payloadLength: number): void {
    let row = this.rows.get(topic);
    if (!row) {
      if (topic.startsWith('$')) return;
      if (this.rows.size >= this.maxTopics) {
        this.untracked++;
        return;
      }
      row = { count: 0, prev: 0, rate: 0, retained: false, spark: new Float32Array(SPARK_SAMPLES), sparkHead: 0, idleTicks: 0 };
      this.rows.set(topic, row);
      this.version++;
    }
    row.count++;
    if (retain) row.retained = payloadLength > 0;
  }

  /** Computes the rates of the last `seconds`, adds them to the sparklines, evicts long-idle topics when full. */
  tick(seconds: number): void {
    const full = this.rows.size >= this.maxTopics;
    for (const [topic, row] of this.rows) {
      const n = row.count - row.prev;
      row.prev = row.count;
      row.rate = n / seconds;
      row.spark[row.sparkHead] = row.rate;
      row.sparkHead = (row.sparkHead + 1) % SPARK_SAMPLES;
      row.idleTicks = n === 0 ? row.idleTicks + 1 : 0;
      if (full && row.idleTicks >= SPARK_SAMPLES) {
        this.rows.delete(topic);
        this.version++;
      }
    }
  }

  /**
   * The levels right below `prefix` ('' for the top), with what is at or below each, busiest first.
   * `visible` hides topics the viewer's ACL does not let it read. One pass over the tracked topics.
   */
  children(prefix: string, visible: (topic: string) => boolean): TopicNode[] {
    const start = prefix === '' ? '' : `${prefix}/`;
    const nodes = new Map<string, TopicNode>();
    for (const [topic, row] of this.rows) {
      if (!topic.startsWith(start) || !visible(topic)) continue;
      const rest = topic.slice(start.length);
      const slash = rest.indexOf('/');
      const name = slash < 0 ? rest : rest.slice(0, slash);
      let node = nodes.get(name);
      if (!node) {
        node = { name, path: start + name, topics: 0, rate: 0, retained: 0, leaf: false };
        nodes.set(name, node);
      }
      node.topics++;
      node.rate += row.rate;
      if (row.retained) node.retained++;
      if (slash < 0) node.leaf = true;
    }
    return [...nodes.values()].sort((a, b) => b.rate - a.rate || a.name.localeCompare(b.name));
  }

  /** The `n` busiest topics of the last tick, with their sparklines. */
  busiest(n: number, visible: (topic: string) => boolean): BusyTopic[] {
    const top: [string, TopicRow][] = [];
    if (n === 0) return [];
    for (const entry of this.rows) {
      if (entry[1].rate === 0 || !visible(entry[0])) continue;
      // a sorted window of n: cheap for the small n a page shows
      if (top.length === n && entry[1].rate <= top[n - 1][1].rate) continue;
      let i = top.length < n ? top.length : n - 1;
      top[i] = entry;
      while (i > 0 && top[i - 1][1].rate < top[i][1].rate) {
        [top[i - 1], top[i]] = [top[i], top[i - 1]];
        i--;
      }
    }
    return top.map(([topic, row]) => ({ topic, rate: row.rate, retained: row.retained, spark: sparkOf(row) }));
  }
}

function sparkOf(row: TopicRow): number[] {
  const out: number[] = [];
  for (let i = 0; i < SPARK_SAMPLES; i++) out.push(row.spark[(row.sparkHead + i) % SPARK_SAMPLES]);
  return out;
}
