import { Duplex } from 'node:stream';

/**
 * Two connected in-memory duplex streams that behave like the two ends of a local socket: what one
 * side writes the other reads; ending or destroying one side gives the other an end-of-stream after
 * the data already sent (as a TCP close does), so nothing written before a close is lost. A write's
 * callback waits until the reading side asks for more, so a slow reader pushes back on the writer
 * instead of buffering without bound. (Node 20 has no `stream.duplexPair`.)
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
  /** The callback of the peer's write that this side could not take yet; called when this side is read. */
  pendingWrite?: () => void;
  private eofSent = false;

  constructor() {
    // an end-of-stream from the peer ends this side too, so both ends see `close` as with a socket
    super({ allowHalfOpen: false });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // a closed peer drops what is written to it, as a socket whose other end went away
    if (this.peer.destroyed || this.eofSent) return cb();
    if (this.peer.push(chunk)) cb();
    else this.peer.pendingWrite = cb;
  }

  override _read(): void {
    const cb = this.pendingWrite;
    this.pendingWrite = undefined;
    cb?.();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.sendEof();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.sendEof();
    this._read(); // release a writer waiting for this side
    cb(err);
  }

  private sendEof(): void {
    if (this.eofSent) return;
    this.eofSent = true;
    if (!this.peer.destroyed) this.peer.push(null);
  }
}
