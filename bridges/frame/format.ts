import type { BeatRecord, CommonBeatConfig } from '../contract.js';
import { camelCase, toNgsiEntity } from '../shared/ngsi.js';

/**
 * The payload of a record in the beat's `beat_format`: `raw` is the record's data as JSON; `ngsi`
 * and `ngsi-ld` use the record's own mapping when it has one, else every field of the data becomes
 * an attribute of entity `urn:ngsi-ld:<Type>:<id>` (default type: the beat name, default id: the
 * subtopic).
 */
export function encodeRecord(beat: string, format: CommonBeatConfig['format'], record: BeatRecord): string {
  if (format === 'raw') return JSON.stringify(record.data);
  if (record.ngsi) return JSON.stringify(record.ngsi(format));
  const entity = record.entity ?? { type: camelCase(beat), id: record.subtopic.replace(/\//g, ':') };
  return JSON.stringify(toNgsiEntity(format, { type: entity.type, id: entity.id, attributes: record.data, time: record.time }));
}
