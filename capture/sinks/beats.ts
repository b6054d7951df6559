import type net from 'node:net';
import type { Logger } from 'pino';
import type { CaptureConfig } from '../config.js';
import type { SinkIO } from '../runner.js';
import { openConnection } from './connect.js';
import { SinkUnavailableError } from './elasticsearch.js';
import { urlArg, type SinkDefinition } from './definition.js';
import { VERSION as MQPROBE_VERSION } from '../../broker/version.js';

/** Filebeat's logstash output waits this long for an acknowledgement (its `timeout`, 30 s) before it sends the window again. */
const ACK_TIMEOUT_MS = 30_000;
const VERSION = 0x32; // '2'
const WINDOW = 0x57; // 'W'
const JSON_FRAME = 0x4a; // 'J'
const ACK = 0x41; // 'A'

export interface BeatsSinkOptions {
  url: URL;
  tls: CaptureConfig['tls'];
  log: Logger;
  /** Fields every event carries under @metadata, as Filebeat's do (Logstash pipelines name indices by `[@metadata][beat]`). */
  metadata: { beat: string; version: string };
  connectTimeoutMs?: number;
  ackTimeoutMs?: number;
}

/**
 * `capture_sink beats tcp://host:5044 | tls://host:5044`: the Lumberjack v2 protocol of Logstash's
 * `beats` input (as Filebeat speaks it, github.com/elastic/go-lumber): each batch is one window
 * ('2W' + count) of JSON data frames ('2J' + sequence + length + event), and `write` resolves only
 * once the receiver has acknowledged the whole window ('2A' + sequence). An ACK of a smaller
 * sequence (Logstash acknowledges partly while its pipeline works) or of 0 (keepalive) restarts
 * the timeout. Without an acknowledgement within the timeout, or when the connection breaks, the
 * write fails and the runner sends the same window again on a new connection: at-least-once, and
 * a receiver drops copies by event.id. No compression ('2C'): the capture thread's CPU is the
 * scarcer resource on the broker's machine.
 */
export function beatsSink(o: BeatsSinkOptions): SinkIO {
  const ackTimeout = o.ackTimeoutMs ?? ACK_TIMEOUT_MS;
  const receiver = `${o.url.protocol}//${o.url.host}`;
  const prefix = `{"@metadata":${JSON.stringify({ beat: o.metadata.beat, type: '_doc', version: o.metadata.version })}`;
  let conn: Connection | undefined;
  let out = Buffer.allocUnsafeSlow(64 * 1024);

  /** The window of these lines: its frames, with the @metadata prefix spliced into each JSON object. */
  const encode = (lines: readonly string[]): Buffer => {
    let units = 0;
    for (const l of lines) units += l.length + prefix.length;
    const worst = 6 + lines.length * 10 + units * 3;
    if (out.length < worst) out = Buffer.allocUnsafeSlow(Math.max(worst, out.length * 2));
    const b = out;
    b[0] = VERSION;
    b[1] = WINDOW;
    b.writeUInt32BE(lines.length, 2);
    let at = 6;
    lines.forEach((l, i) => {
      b[at] = VERSION;
      b[at + 1] = JSON_FRAME;
      b.writeUInt32BE(i + 1, at + 2);
      const body = at + 10;
      // an event line is a JSON object: "{" + its fields; the metadata goes in front of them
      let end = body + b.write(prefix, body, 'utf8');
      end += b.write(l === '{}' ? '}' : `,${l.slice(1)}`, end, 'utf8');
      b.writeUInt32BE(end - body, at + 6);
      at = end;
    });
    return b.subarray(0, at);
  };

  return {
    async write(lines) {
      if (lines.length === 0) return;
      conn ??= new Connection(await openConnection(o.url, o.tls, o.connectTimeoutMs), receiver, o.log, () => (conn = undefined));
      const c = conn;
      await c.window(encode(lines), lines.length, ackTimeout);
    },
    async close() {
      conn?.close();
      conn = undefined;
    },
  };
}

/** One connection to the receiver and the window waiting for its acknowledgement. */
class Connection {
  private pending?: { count: number; resolve(): void; reject(err: Error): void; timer: NodeJS.Timeout; timeoutMs: number };
  private partial = Buffer.alloc(0);
  private closed = false;

  constructor(
    private readonly s: net.Socket,
    private readonly receiver: string,
    private readonly log: Logger,
    private readonly onClose: () => void,
  ) {
    s.on('data', (d: Buffer) => this.read(d));
    s.on('error', (err) => this.fail(`connection to ${receiver} failed: ${err.message}`));
    s.on('close', () => this.fail(`${receiver} closed the connection`));
  }

  /** Sends a window and resolves when all of it is acknowledged. */
  window(frames: Buffer, count: number, timeoutMs: number): Promise<void> {
    if (this.closed) return Promise.reject(new SinkUnavailableError(`connection to ${this.receiver} is closed`));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(`no acknowledgement from ${this.receiver} within ${timeoutMs} ms`), timeoutMs);
      this.pending = { count, resolve, reject, timer, timeoutMs };
      this.s.write(frames, (err) => err && this.fail(`write to ${this.receiver} failed: ${err.message}`));
    });
  }

  close(): void {
    this.fail('sink closed');
  }

  private read(d: Buffer): void {
    let buf = this.partial.length ? Buffer.concat([this.partial, d]) : d;
    while (buf.length >= 6) {
      if (buf[0] !== VERSION || buf[1] !== ACK)
        return this.fail(`${this.receiver} sent something other than a Lumberjack v2 ACK frame (0x${buf.subarray(0, 2).toString('hex')})`);
      this.ack(buf.readUInt32BE(2));
      if (this.closed) return;
      buf = buf.subarray(6);
    }
    // at most 5 bytes wait for the rest of their frame
    this.partial = Buffer.from(buf);
  }

  private ack(seq: number): void {
    const p = this.pending;
    if (!p) {
      if (seq !== 0) this.fail(`${this.receiver} acknowledged sequence ${seq} with no window outstanding`);
      return;
    }
    if (seq > p.count) return this.fail(`${this.receiver} acknowledged sequence ${seq} of a window of ${p.count}`);
    clearTimeout(p.timer);
    if (seq === p.count) {
      this.pending = undefined;
      return p.resolve();
    }
    // a partial acknowledgement or a keepalive: the receiver is working on the window
    p.timer = setTimeout(() => this.fail(`no acknowledgement from ${this.receiver} within ${p.timeoutMs} ms`), p.timeoutMs);
  }

  private fail(why: string): void {
    if (!this.closed) {
      this.closed = true;
      this.onClose();
      this.s.destroy();
      if (why !== 'sink closed') this.log.warn({ receiver: this.receiver }, why);
    }
    const p = this.pending;
    this.pending = undefined;
    if (p) {
      clearTimeout(p.timer);
      p.reject(new SinkUnavailableError(why));
    }
  }
}

export const beatsSinkDefinition: SinkDefinition = {
  kinds: ['beats'],
  usage: 'beats tcp://host:port | beats tls://host:port',
  parse: (v) => (v.count(2), { kind: 'beats', target: urlArg(v, 1, ['tcp', 'tls']) }),
  name: (c) => {
    const u = new URL(c.target!);
    return `beats:${u.protocol}//${u.host}`;
  },
  create: (c, env) => ({
    io: beatsSink({
      url: new URL(c.target!),
      tls: env.config.tls,
      log: env.log.child({ name: 'capture.beats' }),
      metadata: { beat: 'mqprobe', version: MQPROBE_VERSION },
    }),
    spools: true,
  }),
};
