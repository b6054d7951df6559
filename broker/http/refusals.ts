import type { BrokerProbe, HttpRefusalFacts } from '../probe.js';

/** Refused HTTP requests recorded one by one per second; the rest are summed into the window's last. */
export const HTTP_REFUSALS_PER_SECOND = 10;
const WINDOW_MS = 1000;

/**
 * Hands refused HTTP requests to the probe (`http-refused`), at most HTTP_REFUSALS_PER_SECOND a
 * second, so that a scanner cannot flood the capture. Beyond that, refusals are held back: when the
 * second ends, the last of them is recorded with `suppressed` = how many before it were not, so
 * every refusal is accounted for (and each is counted in mqprobe_http_auth_refused_total anyway).
 */
export class RefusalReporter {
  private windowStart = 0;
  private inWindow = 0;
  private held?: HttpRefusalFacts;
  private heldBack = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly probe: BrokerProbe,
    private readonly now: () => number = Date.now,
  ) {}

  refused(facts: Omit<HttpRefusalFacts, 'suppressed'>): void {
    const t = this.now();
    if (t - this.windowStart >= WINDOW_MS) {
      this.windowStart = t;
      this.inWindow = 0;
    }
    if (++this.inWindow <= HTTP_REFUSALS_PER_SECOND) {
      this.probe.emit('http-refused', { ...facts, suppressed: 0 });
      return;
    }
    if (this.held) this.heldBack++;
    this.held = { ...facts, suppressed: 0 };
    this.timer ??= setTimeout(() => this.flush(), this.windowStart + WINDOW_MS - t).unref();
  }

  /** Records the window's last held-back refusal with the count of those before it (also at shutdown). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.held) return;
    const last = { ...this.held, suppressed: this.heldBack };
    this.held = undefined;
    this.heldBack = 0;
    this.probe.emit('http-refused', last);
  }
}
