/**
 * restart_timeout: a constant wait, or AWS's "decorrelated jitter" as Mosquitto 2.0 does it
 * (wait = min(cap, random between base and 3 × the previous wait)), back to base after a connection.
 */
export class RestartTimer {
  private previous: number;

  constructor(
    private readonly restart: { base: number; cap?: number },
    private readonly random: () => number = Math.random,
  ) {
    this.previous = restart.base;
  }

  /** Seconds to wait before the next attempt. */
  next(): number {
    const { base, cap } = this.restart;
    if (cap === undefined) return base;
    const high = Math.max(base, this.previous * 3);
    this.previous = Math.min(cap, base + this.random() * (high - base));
    return this.previous;
  }

  /** A connection succeeded: the next wait starts from base again. */
  reset(): void {
    this.previous = this.restart.base;
  }
}
