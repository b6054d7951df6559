import { isUtf8 } from 'node:buffer';
import type { PayloadPolicy } from './config.js';
import type { MqttFields } from './event.js';

/**
 * Applies `capture_payload` to an event whose `mqtt.payload` still holds the raw Buffer (the hook
 * only keeps a reference; copying and encoding happen here, at flush time). Valid UTF-8 is kept as
 * text, anything else becomes base64; `payload_encoding` says which.
 */
export function applyPayloadPolicy(m: MqttFields, policy: PayloadPolicy): void {
  const raw = m.payload;
  if (!Buffer.isBuffer(raw)) return;
  if (policy.mode === 'off') {
    delete m.payload;
    return;
  }
  let bytes = raw;
  if (policy.mode === 'truncate' && raw.length > policy.bytes) {
    bytes = raw.subarray(0, policy.bytes);
    m.payload_truncated = true;
  }
  const text = utf8Prefix(bytes, m.payload_truncated === true);
  if (text !== undefined) {
    m.payload = text;
    m.payload_encoding = 'utf8';
  } else {
    m.payload = bytes.toString('base64');
    m.payload_encoding = 'base64';
  }
}

/** The bytes as text when they are UTF-8; a truncated payload may end inside a character, which is cut off. */
function utf8Prefix(bytes: Buffer, truncated: boolean): string | undefined {
  for (let cut = 0; cut <= (truncated ? 3 : 0) && cut < bytes.length; cut++) {
    const b = cut ? bytes.subarray(0, bytes.length - cut) : bytes;
    if (isUtf8(b)) return b.toString('utf8');
  }
  return bytes.length === 0 ? '' : undefined;
}
