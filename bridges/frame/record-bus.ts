import type { BeatRecord } from '../contract.js';

export type RecordHandler = (record: BeatRecord) => void;

/**
 * Hands the records one beat emits to other beats in the same process, as emitted (typed data,
 * before `beat_format` shapes the payload and whatever `beat_output` says), so a beat that joins
 * other beats' records (the correlator) needs neither MQTT nor their payload format. Handlers run
 * synchronously inside the emitting beat's `emit` and must not change the record.
 */
export class RecordBus {
  private readonly handlers = new Map<string, Set<RecordHandler>>();

  /** Follows the records of beat `beat` (by name) until the returned function is called. */
  follow(beat: string, handler: RecordHandler): () => void {
    let set = this.handlers.get(beat);
    if (!set) this.handlers.set(beat, (set = new Set()));
    set.add(handler);
    return () => {
      set.delete(handler);
    };
  }

  deliver(beat: string, record: BeatRecord): void {
    const set = this.handlers.get(beat);
    if (set) for (const h of set) h(record);
  }
}
