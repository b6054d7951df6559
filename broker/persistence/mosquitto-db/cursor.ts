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

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++];
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** 64-bit fields (store ids, times) are written in the writer's native order: little-endian on every platform Debian ships Mosquitto for but s390x. */
  u64le(what: string): bigint {
    this.need(8, what);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }

  i64le(what: string): bigint {
    this.need(8, what);
    const v = this.buf.readBigInt64LE(this.pos);
    this.pos += 8;
    return v;
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
