import type { Duplex } from 'node:stream';

/**
 * Unsent bytes across every connection (`global_max_queued_bytes`): the broker-wide bound beside
 * each client's own (Aedes' write buffers are the memory a flood fills: 490 MB in issue 18). Only connections that hold unsent data are visited, and the sum is taken at
 * most once per pass of the event loop, so a delivery costs a set insertion.
 */
export class QueuedBudget {
  private readonly holders = new Set<Duplex>();
  private total = 0;
  private fresh = false;

  /** `limit` 0: no global bound. */
  constructor(private readonly limit: number) {}

  /** After a delivery: remembers the connection if it now holds unsent data. */
  holding(conn: Duplex): void {
    if (this.limit > 0 && conn.writableLength > 0) this.holders.add(conn);
  }

  /**
   * Whether the broker is over its budget and `conn`, holding `bytes` unsent, holds more than the
   * average of the connections that hold any (or as much): the slow readers lose messages, not a reader that
   * merely has this pass's deliveries in its buffer.
   */
  over(conn: Duplex, bytes: number): boolean {
    if (this.limit === 0 || bytes === 0) return false;
    this.holders.add(conn);
    const total = this.sum();
    return total > this.limit && bytes * this.holders.size >= total;
  }

  private sum(): number {
    if (this.fresh) return this.total;
    let total = 0;
    for (const c of this.holders) {
      const n = c.destroyed ? 0 : c.writableLength;
      if (n === 0) this.holders.delete(c);
      else total += n;
    }
    this.total = total;
    this.fresh = true;
    setImmediate(() => (this.fresh = false));
    return total;
  }
}
