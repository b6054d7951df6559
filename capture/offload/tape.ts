/**
 * The batch format between the broker's thread and the capture thread: records in sequence order
 * in one ArrayBuffer that is transferred, not copied. A publish-received event travels as its few
 * variable facts (about 40 bytes and the topic) instead of an 800-byte line; the capture thread
 * builds the event from them with the same code the hook uses (capture/hooks.ts).
 */

export enum Tag {
  /** publish-received: the facts of the PUBLISH and the client's descriptor. */
  Publish = 1,
  /** Any other event: its line is the next entry of the batch's `lines`. */
  Line = 2,
  /** An event the capture thread never got (it was too far behind): counted as dropped by every sink. */
  Skip = 3,
}

const enum Flag {
  Retain = 4,
  Dup = 8,
  MessageId = 16,
  Payload = 32,
}

export interface PublishFacts {
  topic: string;
  qos: number;
  retain: boolean;
  dup: boolean;
  messageId?: number;
}

/** Tag (1) and sequence (8). */
const MARKER = 9;
/** Marker, time (8), descriptor (4), flags (1), message id (2), payload size (4), topic length (4). */
const PUBLISH = MARKER + 23;
const CHUNK = 64 * 1024;
const utf8 = new TextEncoder();

export interface Cut {
  len: number;
  records: number;
}

/** Writes records into the batch under way; `take()` hands the batch over and starts the next. */
export class TapeWriter {
  private buf = new ArrayBuffer(CHUNK);
  private view = new DataView(this.buf);
  private bytes = new Uint8Array(this.buf);
  private len = 0;
  /** Records in the batch under way. */
  records = 0;

  /** Bytes written into the batch under way. */
  get size(): number {
    return this.len;
  }

  /** True once the batch is about as large as a chunk: time to hand it over. */
  get full(): boolean {
    return this.len >= CHUNK - 1024;
  }

  marker(tag: Tag.Line | Tag.Skip, seq: number): void {
    this.room(MARKER);
    this.head(tag, seq);
  }

  /** `payload`: the bytes capture_payload keeps (already cut to what the policy can use), if any. */
  publish(seq: number, ms: number, desc: number, p: PublishFacts, size: number, payload: Uint8Array | undefined): void {
    const t = p.topic;
    this.room(PUBLISH + t.length * 3 + (payload ? 4 + payload.length : 0));
    const v = this.view;
    const at = this.len;
    this.head(Tag.Publish, seq);
    v.setFloat64(at + 9, ms, true);
    v.setUint32(at + 17, desc, true);
    v.setUint8(
      at + 21,
      p.qos |
        (p.retain ? Flag.Retain : 0) |
        (p.dup ? Flag.Dup : 0) |
        (p.messageId !== undefined ? Flag.MessageId : 0) |
        (payload ? Flag.Payload : 0),
    );
    v.setUint16(at + 22, p.messageId ?? 0, true);
    v.setUint32(at + 24, size, true);
    let end = at + PUBLISH;
    // topics are ASCII nearly always: copied by hand, which beats a native UTF-8 encoder call on short strings
    const b = this.bytes;
    for (let i = 0; i < t.length; i++) {
      const c = t.charCodeAt(i);
      if (c >= 0x80) {
        end = at + PUBLISH + utf8.encodeInto(t, b.subarray(at + PUBLISH)).written;
        break;
      }
      b[end++] = c;
    }
    v.setUint32(at + 28, end - at - PUBLISH, true);
    if (payload) {
      v.setUint32(end, payload.length, true);
      b.set(payload, end + 4);
      end += 4 + payload.length;
    }
    this.len = end;
  }

  /** Where the batch stands now: `take()` hands over what is written up to here. */
  cut(): Cut {
    return { len: this.len, records: this.records };
  }

  /**
   * The batch up to the cut (transfer its buffer), or undefined when that is empty; records
   * written after the cut begin the next batch.
   */
  take(cut: Cut): { tape: ArrayBuffer; len: number; records: number } | undefined {
    if (cut.records === 0) return undefined;
    const out = { tape: this.buf, len: cut.len, records: cut.records };
    const rest = this.bytes.slice(cut.len, this.len);
    const records = this.records - cut.records;
    this.fresh(Math.max(CHUNK, rest.length * 2));
    this.bytes.set(rest);
    this.len = rest.length;
    this.records = records;
    return out;
  }

  private head(tag: Tag, seq: number): void {
    this.view.setUint8(this.len, tag);
    this.view.setFloat64(this.len + 1, seq, true);
    this.len += MARKER;
    this.records++;
  }

  /** Makes sure `n` more bytes fit, moving what is written to a larger buffer if not. */
  private room(n: number): void {
    if (this.len + n <= this.buf.byteLength) return;
    const old = this.bytes.subarray(0, this.len);
    this.fresh(Math.max(CHUNK, 2 * (this.len + n)));
    this.bytes.set(old);
    this.len = old.length;
  }

  private fresh(size: number): void {
    this.buf = new ArrayBuffer(size);
    this.view = new DataView(this.buf);
    this.bytes = new Uint8Array(this.buf);
    this.len = 0;
    this.records = 0;
  }
}

export interface TapeVisitor {
  publish(seq: number, ms: number, desc: number, p: PublishFacts, size: number, payload: Buffer | undefined): void;
  line(seq: number): void;
  skip(seq: number): void;
}

/** Reads a batch written by TapeWriter, calling the visitor once per record, in order. */
export function readTape(tape: ArrayBuffer, len: number, visit: TapeVisitor): void {
  const v = new DataView(tape, 0, len);
  const bytes = Buffer.from(tape, 0, len);
  let at = 0;
  while (at < len) {
    const tag = v.getUint8(at) as Tag;
    const seq = v.getFloat64(at + 1, true);
    if (tag === Tag.Line) visit.line(seq);
    else if (tag === Tag.Skip) visit.skip(seq);
    if (tag !== Tag.Publish) {
      at += MARKER;
      continue;
    }
    const flags = v.getUint8(at + 21);
    const topicEnd = at + PUBLISH + v.getUint32(at + 28, true);
    const p: PublishFacts = {
      topic: bytes.toString('utf8', at + PUBLISH, topicEnd),
      qos: flags & 3,
      retain: (flags & Flag.Retain) !== 0,
      dup: (flags & Flag.Dup) !== 0,
    };
    if (flags & Flag.MessageId) p.messageId = v.getUint16(at + 22, true);
    let end = topicEnd;
    let payload: Buffer | undefined;
    if (flags & Flag.Payload) {
      const n = v.getUint32(end, true);
      payload = bytes.subarray(end + 4, end + 4 + n);
      end += 4 + n;
    }
    visit.publish(seq, v.getFloat64(at + 9, true), v.getUint32(at + 17, true), p, v.getUint32(at + 24, true), payload);
    at = end;
  }
}
