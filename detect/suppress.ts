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

/** A rule's alerts in the current minute; past max_alerts the rest are held back (any entity). */
interface Budget {
  rule: AlertRule;
  start: number;
  raised: number;
  held: number;
  last?: Finding;
}

const MINUTE = 60_000;

/** Holds kept at once; past it the oldest hold ends early (with its summary). */
const MAX_HOLDS = 100_000;

/**
 * Per rule and entity, the first finding becomes an alert and the following ones are held back
 * for the rule's `suppress` time; when that time has passed (event time), one `alert-summary`
 * says how many were held back, with the evidence of the last. Per rule, at most `max_alerts`
 * alerts a minute: the rest are summarised for the whole rule at the end of the minute, which
 * also bounds the holds under a flood of new entities.
 */
export class Suppressor {
  private holds = new Map<string, Hold>();
  private budgets = new Map<string, Budget>();
  private nextDue = Infinity;

  /** The alert for a finding, or nothing when it is held back. */
  offer(rule: AlertRule, f: Finding, out: AlertEvent[]): void {
    const key = `${rule.name}\u0000${f.key}`;
    const hold = this.holds.get(key);
    if (hold && f.time < hold.until) {
      hold.count++;
      hold.last = f;
      return;
    }
    if (hold) this.end(key, hold, hold.until, out);
    const budget = this.budgetOf(rule, f.time, out);
    if (budget.raised >= rule.maxAlerts) {
      budget.held++;
      budget.last = f;
      return;
    }
    budget.raised++;
    if (this.holds.size >= MAX_HOLDS) {
      const [oldestKey, oldest] = this.holds.entries().next().value as [string, Hold];
      this.end(oldestKey, oldest, f.time, out);
    }
    const until = f.time + rule.suppressMs;
    this.holds.set(key, { rule, since: f.time, until, count: 0 });
    this.nextDue = Math.min(this.nextDue, until, budget.start + MINUTE);
    out.push(buildAlert(rule, f));
  }

  /** Ends the holds and the rule minutes whose time is up by `now`, with their summaries. */
  due(now: number, out: AlertEvent[]): void {
    if (now < this.nextDue) return;
    for (const b of this.budgets.values()) if (b.start + MINUTE <= now) this.endBudget(b, b.start + MINUTE, out);
    let next = Infinity;
    for (const [key, hold] of this.holds) {
      if (hold.until <= now) this.end(key, hold, hold.until, out);
      else if (hold.until < next) next = hold.until;
    }
    for (const b of this.budgets.values()) next = Math.min(next, b.start + MINUTE);
    this.nextDue = next;
  }

  /** Ends every hold at `now` (end of a replay, broker shutdown). */
  flush(now: number, out: AlertEvent[]): void {
    for (const [key, hold] of this.holds) this.end(key, hold, Math.min(now, hold.until), out);
    for (const b of this.budgets.values()) this.endBudget(b, Math.min(now, b.start + MINUTE), out);
    this.nextDue = Infinity;
  }

  private budgetOf(rule: AlertRule, time: number, out: AlertEvent[]): Budget {
    let b = this.budgets.get(rule.name);
    if (b && time >= b.start + MINUTE) {
      this.endBudget(b, b.start + MINUTE, out);
      b = undefined;
    }
    if (!b) {
      b = { rule, start: time, raised: 0, held: 0 };
      this.budgets.set(rule.name, b);
    }
    return b;
  }

  private endBudget(b: Budget, at: number, out: AlertEvent[]): void {
    this.budgets.delete(b.rule.name);
    if (b.held > 0 && b.last) out.push(buildAlert(b.rule, b.last, { count: b.held, since: b.start, at, overflow: true }));
  }

  private end(key: string, hold: Hold, at: number, out: AlertEvent[]): void {
    this.holds.delete(key);
    if (hold.count > 0 && hold.last) out.push(buildAlert(hold.rule, hold.last, { count: hold.count, since: hold.since, at }));
  }
}
