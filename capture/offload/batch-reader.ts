import type { ClientHandle } from '../../broker/engine/client.js';
import type { ConnInfo } from '../../broker/probe.js';
import { EventFactory } from '../build.js';
import type { CaptureConfig } from '../config.js';
import { Finisher } from '../finish.js';
import { publishReceived } from '../hooks.js';
import { lineWriter } from '../serialize.js';
import type { ThreadInit, ToThread } from './messages.js';
import { PublishLine } from './publish-line.js';
import { readTape } from './tape.js';

export type Batch = Extract<ToThread, { t: 'batch' }>;

/**
 * Turns the batches of the broker's thread back into event lines, in event.sequence order: a
 * publish-received is built from its facts exactly as the hook would have built it (same factory,
 * same finishing, same serializer), any other event comes as the line the broker's thread wrote.
 */
export class BatchReader {
  private readonly factory: EventFactory;
  private readonly finisher: Finisher;
  private readonly serialize: (e: ReturnType<typeof publishReceived>) => string | undefined;
  private readonly clients = new Map<number, { client: ClientHandle; conn?: ConnInfo; user?: string; line?: PublishLine | null }>();
  /** ECS lines of publishes without payload are joined from pieces per client (PublishLine); other lines are built and serialised. */
  private readonly pieces: boolean;
  /** The JSON text of event.id up to the sequence number. */
  private readonly idHead: string;

  constructor(
    private readonly init: Pick<ThreadInit, 'info' | 'idPrefix'>,
    config: Pick<CaptureConfig, 'payload' | 'format'>,
  ) {
    this.factory = new EventFactory(init.info);
    this.finisher = new Finisher(config.payload);
    this.serialize = lineWriter(config.format);
    this.pieces = config.format === 'ecs';
    this.idHead = JSON.stringify(init.idPrefix).slice(0, -1);
  }

  /** Calls `line` for every event of the batch with its line (undefined: the format has none), `lost` for events the thread never got. */
  read(m: Batch, line: (line: string | undefined, seq: number) => void, lost: (seq: number) => void): void {
    for (const d of m.defs) this.clients.set(d.id, { client: { id: d.clientId }, conn: d.conn, user: d.user });
    let next = 0;
    readTape(m.tape, m.len, {
      publish: (seq, ms, desc, p, size, payload) => {
        const c = this.clients.get(desc);
        if (!c) throw new Error(`capture batch names client ${desc}, which was never described`);
        if (this.pieces && payload === undefined) {
          c.line ??= PublishLine.of(this.factory, c.client, c.conn, c.user) ?? null;
          if (c.line) return line(c.line.line(this.finisher.iso(ms), `${this.idHead}${seq}"`, seq, p, size), seq);
        }
        const e = publishReceived(this.factory, c.client, c.conn, c.user, p, size, payload);
        e.event.sequence = seq;
        e.event.id = this.init.idPrefix + seq;
        this.finisher.finish(e, ms);
        line(this.serialize(e), seq);
      },
      line: (seq) => {
        const l = m.lines[next++];
        if (l === null || l === undefined) lost(seq);
        else line(l === '' ? undefined : l, seq);
      },
      skip: lost,
    });
    for (const id of m.forget) this.clients.delete(id);
  }
}
