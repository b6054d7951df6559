/** One Server-Sent Event as the HTML standard's event-stream interpretation defines it. */
export interface SseMessage {
  /** The last `id:` seen so far on the stream (the spec's "last event ID buffer"). */
  id?: string;
  event: string;
  data: string;
}

/** What the parser reports besides events: an event larger than the limit was dropped whole. */
export interface SseParserEvents {
  onEvent(msg: SseMessage): void;
  onOversized(bytes: number, id: string | undefined): void;
  /** `retry:` asks the client to wait this long before reconnecting. */
  onRetry?(ms: number): void;
}

/**
 * An incremental `text/event-stream` parser (HTML Living Standard, "Interpreting an event stream"):
 * lines end in CR, LF or CRLF; `field: value` with one optional space after the colon; lines starting
 * with `:` are comments (OpenCTI's heartbeats are events, but proxies add comments); a blank line
 * dispatches. An event whose lines exceed `maxEventBytes` is dropped whole and reported, and its
 * bytes are not kept, so a hostile 50 MB event costs no more memory than the limit.
 */
export class SseParser {
  private buf = '';
  private pendingCr = false;
  private lastId?: string;
  private event = '';
  private data: string[] = [];
  private size = 0;
  private oversized = false;
  /** The current line's start was dropped (it made the event oversized): its end is not a blank line. */
  private partial = false;

  constructor(
    private readonly maxEventBytes: number,
    private readonly out: SseParserEvents,
  ) {}

  push(chunk: string): void {
    let text = chunk;
    // a CR at the end of the previous chunk already ended its line; a LF right after it is part of that CRLF
    if (this.pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.pendingCr = false;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.buf + text.slice(start, i);
      if (this.partial) {
        this.partial = false;
        this.size += line.length + 1;
      } else this.line(line);
      this.buf = '';
      if (c === 13) {
        if (i + 1 === text.length) this.pendingCr = true;
        else if (text.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    const rest = text.slice(start);
    if (this.partial || this.size + this.buf.length + rest.length > this.maxEventBytes) {
      // the event is being dropped: its bytes are counted, not kept
      this.size += this.buf.length + rest.length;
      this.buf = '';
      this.oversized = true;
      this.partial = true;
      return;
    }
    this.buf += rest;
  }

  /** The stream ended: an event without its closing blank line is discarded, as the standard says. */
  reset(): void {
    this.buf = '';
    this.pendingCr = false;
    this.partial = false;
    this.clear();
  }

  private clear(): void {
    this.event = '';
    this.data = [];
    this.size = 0;
    this.oversized = false;
  }

  private line(line: string): void {
    if (line === '') {
      this.dispatch();
      return;
    }
    this.size += line.length + 1;
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    // an oversized event still tells its id, so that resuming skips it rather than fetching it again
    if (this.oversized || this.size > this.maxEventBytes) {
      this.oversized = true;
      this.data = [];
      if (field === 'id' && !value.includes('\u0000')) this.lastId = value;
      return;
    }
    switch (field) {
      case 'event':
        this.event = value;
        break;
      case 'data':
        this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\u0000')) this.lastId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.out.onRetry?.(Number(value));
        break;
      default: // unknown fields are ignored
    }
  }

  private dispatch(): void {
    if (this.oversized) {
      this.out.onOversized(this.size, this.lastId);
    } else if (this.data.length > 0) {
      this.out.onEvent({ id: this.lastId, event: this.event || 'message', data: this.data.join('\n') });
    }
    this.clear();
  }
}
