import type { Duplex } from 'node:stream';
import type { WrittenPacket } from './packet-writes.js';

/**
 * About how many packets written to a connection are still buffered in the process: its unsent
 * bytes (`writableLength`, O(1)) divided by the average size of the packets written to it lately (a
 * moving average over about 64 packets). Exact counting would need each packet's flush, which Node
 * tells only by summing its buffered chunks (`bytesWritten`), a cost per write that grows with the
 * backlog it is meant to bound.
 */
export class UnsentPackets {
  private averageBytes = 0;

  constructor(private readonly conn: Duplex) {}

  /** Called with each packet as it is handed to the stream. */
  written(p: WrittenPacket): void {
    const bytes = packetBytes(p);
    this.averageBytes = this.averageBytes === 0 ? bytes : this.averageBytes + (bytes - this.averageBytes) / 64;
  }

  count(): number {
    const queued = this.conn.writableLength;
    return queued === 0 || this.averageBytes === 0 ? 0 : Math.ceil(queued / this.averageBytes);
  }
}

/** An estimate of a packet's encoded size: fixed header, topic, packet id, payload (MQTT 3.1.1; close enough for 5.0). */
function packetBytes(p: WrittenPacket): number {
  if (p.cmd !== 'publish') return 4;
  const topic = (p as { topic?: string }).topic?.length ?? 0;
  const payload = p.payload === undefined ? 0 : typeof p.payload === 'string' ? Buffer.byteLength(p.payload) : p.payload.length;
  const remaining = 2 + topic + ((p.qos ?? 0) > 0 ? 2 : 0) + payload;
  return 1 + (remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4) + remaining;
}
