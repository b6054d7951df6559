import { Duplex } from 'node:stream';

/**
 * Two connected in-memory duplex streams that behave like the two ends of a local socket: what one
 * side writes the other reads; ending or destroying one side gives the other an end-of-stream after
 * the data already sent (as a TCP close does), so nothing written before a close is lost. (Node 20
 * has no `stream.duplexPair`.)
 *
 * A write completes once its bytes are queued on the reading side; there is no backpressure. Holding a
 * write's callback until the reader asked for more (as a socket would) made the broker read a
 * misaligned stream under bursts of thousands of publishes from mqtt.js (CONNACK flag errors, lost
 * records: test/bridges/frame.test.ts "a burst"). Memory stays bounded by the beats themselves: a
 * tailing beat awaits each batch's publishes (at most a few MB of lines) before it reads on, and the
 * broker reads the queue in the same event loop.
 */
export function duplexPair(): [Duplex, Duplex] {
  const a = new PairSide();
  const b = new PairSide();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

class PairSide extends Duplex {
  peer!: PairSide;
  private eofSent = false;

  constructor() {
    // an end-of-stream from the peer ends this side too, so both ends see `close` as with a socket
    super({ allowHalfOpen: false });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // a closed peer drops what is written to it, as a socket whose other end went away
    if (this.peer.destroyed || this.eofSent) return cb();
    this.peer.push(chunk);
    cb();
  }

  /**
   * What was written while corked (mqtt-packet corks each packet's 4-6 pieces until the next tick) reaches
   * the reader as one chunk: one parse instead of one per piece (bench/bridge/throughput.ts).
   */
  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    if (this.peer.destroyed || this.eofSent) return cb();
    this.peer.push(chunks.length === 1 ? chunks[0].chunk : Buffer.concat(chunks.map((c) => c.chunk)));
    cb();
  }

  override _read(): void {
    // data arrives through the peer's writes
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.sendEof();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.sendEof();
    cb(err);
  }

  private sendEof(): void {
    if (this.eofSent) return;
    this.eofSent = true;
    if (!this.peer.destroyed) this.peer.push(null);
  }
}
