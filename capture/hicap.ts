import type { CaptureEvent } from './event.js';

/**
 * `capture_format hicap`: the JSON shape of the Flex4Apps Mosquitto capture fork
 * (../shared/hicap-format.md), for receivers built for it. Everything sits under `"mqtt"`, nulls
 * are written, times have one-second resolution with a zone suffix. Actions the fork never had
 * (denials, unsubscribes, wills, errors, drops…) have no HICAP form and are not written.
 */
const CONNACK_REASONS: Record<number, string> = {
  1: 'CONNACK_REFUSED_PROTOCOL_VERSION',
  2: 'CONNACK_REFUSED_IDENTIFIER_REJECTED',
  3: 'CONNACK_REFUSED_SERVER_UNAVAILABLE',
  4: 'CONNACK_REFUSED_BAD_USERNAME_PASSWORD',
  5: 'CONNACK_REFUSED_NOT_AUTHORIZED',
};

const HICAP_ACTION: Record<string, string> = {
  'publish-received': 'PUBLISH',
  'subscription-granted': 'SUBSCRIBE',
  'client-connected': 'CONNECT',
  'connection-refused': 'CONNECT',
  'client-disconnected': 'DISCONNECT',
  'broker-starting': 'STARTUP',
  'broker-stopped': 'SHUTDOWN',
};

const pad = (n: number, w = 2) => String(Math.abs(n)).padStart(w, '0');

/** `2018-11-06T12:42:27Z (GMT)` */
export function tsUtc(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z (GMT)`;
}

/** `2018-11-06T13:42:27+0100 (CET)`: local time, numeric offset, the zone's short name. */
export function tsLocal(d: Date): string {
  const off = -d.getTimezoneOffset();
  const local = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const zone =
    new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(d).find((p) => p.type === 'timeZoneName')?.value ?? 'UTC';
  return `${local}${off >= 0 ? '+' : '-'}${pad(Math.trunc(off / 60))}${pad(off % 60)} (${zone === 'UTC' && off === 0 ? 'GMT' : zone})`;
}

/** The HICAP object of one event, or undefined when the fork had no such event. */
export function toHicap(e: CaptureEvent): Record<string, unknown> | undefined {
  const action = HICAP_ACTION[e.event.action];
  if (!action) return undefined;
  const d = new Date(e['@timestamp']);
  const m = e.mqtt ?? {};
  if (action === 'STARTUP') {
    const ls = (e.mqprobe?.listeners as { bind: string; port: number }[] | undefined) ?? [];
    return { mqtt: { action, listeners: ls.map((l) => ({ bind: l.bind, port: l.port })) } };
  }
  if (action === 'SHUTDOWN') return { mqtt: { action } };
  const o: Record<string, unknown> = { action };
  const tls = e.tls?.client;
  if (action === 'PUBLISH' || action === 'SUBSCRIBE') {
    if (tls?.x509?.serial_number) o.sslSN = colonHex(tls.x509.serial_number);
    if (tls?.subject) o.sslCN = commonName(tls.subject);
    o.topic = m.topic ?? null;
  }
  if (action === 'CONNECT') {
    const ok = e.event.action === 'client-connected';
    o.success = ok;
    o.state = ok ? 'ACCEPTED' : 'REFUSED';
    if (!ok) {
      o.errCode = m.reason_code ?? null;
      o.reason = CONNACK_REASONS[m.reason_code ?? 0] ?? 'CONNACK_REFUSED_UNKNOWN_REASON';
    }
  }
  o.clientIP = e.source?.ip ?? null;
  o.port = e.destination?.port ?? null;
  o.clientID = m.client_id ?? null;
  o.tsUTC = tsUtc(d);
  o.tsLocal = tsLocal(d);
  if (action === 'PUBLISH') o.payload = hicapPayload(m.payload, m.payload_encoding);
  return { mqtt: o };
}

/** The fork sent payloads base64-encoded, null when empty (or, here, when capture_payload is off). */
function hicapPayload(p: string | Buffer | undefined, enc: string | undefined): string | null {
  if (p === undefined || p === '') return null;
  if (Buffer.isBuffer(p)) return p.length ? p.toString('base64') : null;
  return enc === 'base64' ? p : Buffer.from(p, 'utf8').toString('base64');
}

function colonHex(serial: string): string {
  const hex = serial.replace(/[^0-9a-fA-F]/g, '').toUpperCase();
  return (hex.length % 2 ? `0${hex}` : hex).match(/../g)!.join(':');
}

function commonName(subject: string): string {
  return /(?:^|[,/\n])\s*CN=([^,/\n]+)/.exec(subject)?.[1] ?? subject;
}
