import { camelCase, toNgsiEntity, type NgsiFormat } from '../shared/ngsi.js';

const CONN_ID: Record<string, string> = {
  'id.orig_h': 'source_ip',
  'id.orig_p': 'source_port',
  'id.resp_h': 'destination_ip',
  'id.resp_p': 'destination_port',
};

/** The works-beats attribute names: connection ids as source/destination ip/port, `orig_*`/`resp_*` as `source_*`/`destination_*`. */
export function ngsiFieldName(field: string): string {
  return CONN_ID[field] ?? field.replace(/^orig_/, 'source_').replace(/^resp_/, 'destination_');
}

/**
 * A Zeek record as the works-beats Zeek beat's NGSI entity: one entity per sensor and log type,
 * `urn:ngsi-ld:<CamelCase(log)>:<sensor>`, its attributes the record's fields renamed, `ts` in
 * epoch milliseconds.
 */
export function zeekEntity(
  format: NgsiFormat,
  log: string,
  sensor: string,
  rec: Record<string, unknown>,
  timeMs: number | undefined,
): Record<string, unknown> {
  const attributes: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rec)) {
    if (k === '@timestamp') continue;
    attributes[ngsiFieldName(k)] = k === 'ts' && typeof v === 'number' ? Math.round(v * 1000) : v;
  }
  return toNgsiEntity(format, { type: camelCase(log), id: sensor, attributes, time: timeMs });
}
