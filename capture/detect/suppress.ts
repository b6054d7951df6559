import type { Finding } from './detector.js';
import { buildAlert, type AlertEvent, type AlertRule } from './alert.js';

interface Hold {
  rule: AlertRule;
  since: number;
  until: number;
  count: number;
  /** The last finding held back: the summary reports its evidence. */
  last?: Finding;
}

/** Holds kept at once; past it the oldest hold ends early (with its summary). */
const MAX_HOLDS = 100_000;

/**
 * Per rule and entity, the first finding becomes an alert and the following ones are held back
 * for the rule's `suppress` time; when that time has passed (event time), one `alert-summary`
 * says how many were held back, with the evidence of the last.
 */
export class Suppressor {
  private holds = new Map<string, Hold>();
  private nextDue = Infinity;

  /** The alert for a finding, or undefined when it is held back. */
  offer(rule: AlertRule, f: Finding, out: AlertEvent[]): void {
    const key = `${rule.name}\u0000${f.key}`;
    const hold = this.holds.get(key);
    if (hold && f.time < hold.until) {
      hold.count++;
      hold.last = f;
      return;
    }
    if (hold) this.end(key, hold, hold.until, out);
    if (this.holds.size >= MAX_HOLDS) {
      const [oldestKey, oldest] = this.holds.entries().next().value as [string, Hold];
      this.end(oldestKey, oldest, f.time, out);
    }
    const until = f.time + rule.suppressMs;
    this.holds.set(key, { rule, since: f.time, until, count: 0 });
    if (until < this.nextDue) this.nextDue = until;
    out.push(buildAlert(rule, f));
  }

  /** Ends the holds whose time is up by `now`, with their summaries. */
  due(now: number, out: AlertEvent[]): void {
    if (now < this.nextDue) return;
    let next = Infinity;
    for (const [key, hold] of this.holds) {
      if (hold.until <= now) this.end(key, hold, hold.until, out);
      else if (hold.until < next) next = hold.until;
    }
    this.nextDue = next;
  }

  /** Ends every hold at `now` (end of a replay, broker shutdown). */
  flush(now: number, out: AlertEvent[]): void {
    for (const [key, hold] of this.holds) this.end(key, hold, Math.min(now, hold.until), out);
    this.nextDue = Infinity;
  }

  private end(key: string, hold: Hold, at: number, out: AlertEvent[]): void {
    this.holds.delete(key);
    if (hold.count > 0 && hold.last) out.push(buildAlert(hold.rule, hold.last, { count: hold.count, since: hold.since, at }));
  }
}
