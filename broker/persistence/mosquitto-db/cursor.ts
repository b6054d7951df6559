/** A read error in a Mosquitto persistence file: names the file and the byte offset where reading stopped. */
export class MosquittoDbError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`${file}: not a readable Mosquitto persistence file at byte ${offset}: ${reason}`);
    this.name = 'MosquittoDbError';
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Bounds-checked big-endian reads over one region of the file (the whole file, or one chunk).
 * Every length read from the file is checked against the bytes that are really there before
 * anything is sliced, so an absurd length field fails at once and never allocates.
 */
export class Cursor {
  constructor(
    private readonly buf: Buffer,
    private readonly file: string,
    /** Absolute offset in the file of buf[0], for error messages. */
    private readonly base: number,
    private pos = 0,
  ) {}

  get offset(): number {
    return this.base + this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  fail(reason: string, at = this.offset): never {
    throw new MosquittoDbError(this.file, at, reason);
  }

  private need(n: number, what: string): void {
    if (n > this.remaining) this.fail(`${what} needs ${n} bytes, only ${this.remaining} left`);
  }

  private fixed<T>(n: number, what: string, get: (at: number) => T): T {
    this.need(n, what);
    const v = get(this.pos);
    this.pos += n;
    return v;
  }

  u8(what: string): number {
    return this.fixed(1, what, (at) => this.buf[at]);
  }

  u16(what: string): number {
    return this.fixed(2, what, (at) => this.buf.readUInt16BE(at));
  }

  u32(what: string): number {
    return this.fixed(4, what, (at) => this.buf.readUInt32BE(at));
  }

  /** 64-bit fields (store ids, times) are written in the writer's native order: little-endian on every platform Debian ships Mosquitto for but s390x. */
  u64le(what: string): bigint {
    return this.fixed(8, what, (at) => this.buf.readBigUInt64LE(at));
  }

  i64le(what: string): bigint {
    return this.fixed(8, what, (at) => this.buf.readBigInt64LE(at));
  }

  skip(n: number, what: string): void {
    this.need(n, what);
    this.pos += n;
  }

  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** A sub-cursor over the next n bytes (one chunk), advancing past them. */
  region(n: number, what: string): Cursor {
    const at = this.offset;
    return new Cursor(this.bytes(n, what), this.file, at);
  }

  string(n: number, what: string): string {
    const at = this.offset;
    const b = this.bytes(n, what);
    try {
      return utf8.decode(b);
    } catch {
      return this.fail(`${what} is not valid UTF-8`, at);
    }
  }

  /** Varint as in MQTT (1-4 bytes, 7 bits each). */
  varint(what: string): number {
    let value = 0;
    for (let i = 0; i < 4; i++) {
      const b = this.u8(what);
      value += (b & 0x7f) * 128 ** i;
      if (!(b & 0x80)) return value;
    }
    return this.fail(`${what} is a varint longer than 4 bytes`);
  }

  /** Fails unless the region was read to its last byte (a chunk whose length disagrees with its fields is corrupt). */
  end(what: string): void {
    if (this.remaining !== 0) this.fail(`${this.remaining} unexpected bytes at the end of ${what}`);
  }
}
