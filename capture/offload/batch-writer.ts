import type { ClientHandle } from '../../broker/engine/client.js';
import type { ConnInfo } from '../../broker/probe.js';
import type { PayloadPolicy } from '../config.js';
import type { Batch } from './batch-reader.js';
import type { BatchLine, Descriptor } from './messages.js';
import { Tag, TapeWriter, type Cut, type PublishFacts } from './tape.js';

/**
 * The broker thread's half of a batch for the capture thread: the tape of records, the lines of
 * the events that are not sent as facts, and the clients the thread must learn or may forget.
 */
export class BatchWriter {
  private readonly tape = new TapeWriter();
  private lines: BatchLine[] = [];
  /** UTF-16 units of the lines under way. */
  private lineUnits = 0;
  private defs: Descriptor[] = [];
  private forget: number[] = [];
  private readonly clients = new WeakMap<ClientHandle, { id: number; conn?: ConnInfo; user?: string }>();
  // the thread's copy of a client is forgotten once the broker has forgotten the client
  private readonly gone = new FinalizationRegistry<number>((id) => this.forget.push(id));
  private nextClient = 1;

  constructor(private readonly payload: PayloadPolicy) {}

  /** Bytes under way: the tape and the lines (UTF-16 units). */
  get size(): number {
    return this.tape.size + this.lineUnits;
  }

  /** True when the batch is large enough to be handed over now. */
  get full(): boolean {
    return this.tape.full;
  }

  publish(
    seq: number,
    ms: number,
    c: ClientHandle,
    conn: ConnInfo | undefined,
    user: string | undefined,
    p: PublishFacts,
    payload: Buffer,
  ): void {
    this.tape.publish(seq, ms, this.client(c, conn, user), p, payload.length, this.kept(payload));
  }

  /** An event the capture thread will not get; every sink counts it as dropped. */
  skip(seq: number): void {
    this.tape.marker(Tag.Skip, seq);
  }

  /** Holds the place of an event whose line `line()` gives at flush time. */
  marker(seq: number): void {
    this.tape.marker(Tag.Line, seq);
  }

  /** The line of the oldest marked event without one yet (undefined: the format has none; dropped: counted as dropped instead). */
  line(line: string | undefined, dropped: boolean): void {
    if (line === undefined || dropped) {
      this.lines.push(line === undefined ? '' : null);
      return;
    }
    this.lines.push(line);
    this.lineUnits += line.length;
  }

  cut(): Cut {
    return this.tape.cut();
  }

  /** The batch up to the cut, for postMessage with its tape transferred; undefined when empty. */
  take(cut: Cut): Batch | undefined {
    const b = this.tape.take(cut);
    if (!b) return undefined;
    const batch: Batch = {
      t: 'batch',
      tape: b.tape,
      len: b.len,
      records: b.records,
      bytes: b.len + this.lineUnits,
      lines: this.lines,
      defs: this.defs,
      forget: this.forget,
    };
    this.lines = [];
    this.lineUnits = 0;
    this.defs = [];
    this.forget = [];
    return batch;
  }

  /** The id the thread knows a client by (a new one when its connection or user changed). */
  private client(c: ClientHandle, conn: ConnInfo | undefined, user: string | undefined): number {
    let known = this.clients.get(c);
    if (known === undefined || known.conn !== conn || known.user !== user) {
      known = { id: this.nextClient++, conn, user };
      this.clients.set(c, known);
      this.defs.push({ id: known.id, clientId: c.id, conn: conn && plainConn(conn), user });
      this.gone.register(c, known.id);
    }
    return known.id;
  }

  /** The payload bytes capture_payload can use: one byte past a truncation, so the thread still sees that it truncates. */
  private kept(payload: Buffer): Buffer | undefined {
    const policy = this.payload;
    if (policy.mode === 'off') return undefined;
    return policy.mode === 'truncate' && payload.length > policy.bytes + 1 ? payload.subarray(0, policy.bytes + 1) : payload;
  }
}

/** What the capture thread needs of a connection: plain data (the listener config holds more than it can take). */
function plainConn(c: ConnInfo): ConnInfo {
  return {
    listener: { bind: c.listener.bind } as ConnInfo['listener'],
    listenerPort: c.listenerPort,
    transport: c.transport,
    remoteAddress: c.remoteAddress,
    remotePort: c.remotePort,
    tls: c.tls,
    openedAt: c.openedAt,
  };
}
