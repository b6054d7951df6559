/**
 * The one buffer a sink writes its batches through: each line is encoded straight into it,
 * followed by "\n". Joining a batch into one string and letting the socket encode that would make
 * a megabyte string and a megabyte Buffer of garbage per batch, both too large for V8's young
 * generation; measured in bench/capture/fanin.ts, that garbage cost more than serialising.
 *
 * The view `encode()` returns is valid until its next call: a sink encodes the next batch only
 * once the write of the previous one has completed.
 */
export class LineBuffer {
  private buf = Buffer.allocUnsafeSlow(64 * 1024);

  encode(lines: readonly string[]): Buffer {
    let units = 0;
    for (const l of lines) units += l.length;
    // UTF-8 needs at most 3 bytes per UTF-16 code unit; the buffer grows to the largest batch seen
    const worst = units * 3 + lines.length;
    if (this.buf.length < worst) this.buf = Buffer.allocUnsafeSlow(Math.max(worst, this.buf.length * 2));
    const buf = this.buf;
    let at = 0;
    for (const l of lines) {
      at += buf.write(l, at, 'utf8');
      buf[at++] = 0x0a;
    }
    return buf.subarray(0, at);
  }
}
