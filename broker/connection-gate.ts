import type { Duplex } from 'node:stream';

/** global_max_connections: open network connections across every listener, counted until each closes. */
export class ConnectionGate {
  private open = 0;

  constructor(private readonly max: number | undefined) {}

  /** Counts the connection and tells whether it may stay (Mosquitto counts it first, then compares). */
  admit(stream: Duplex): boolean {
    if (!this.max) return true;
    if (this.open + 1 > this.max) return false;
    this.open++;
    stream.once('close', () => this.open--);
    return true;
  }
}
