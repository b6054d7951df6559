import type { CaptureEvent } from './event.js';

/** Plain printable ASCII without quote or backslash needs no escaping. */
const PLAIN = /^[ !#-[\]-~]*$/;
const q = (s: string | undefined) => (s === undefined ? '""' : PLAIN.test(s) ? `"${s}"` : JSON.stringify(s));

function from(e: CaptureEvent): string {
  const s = e.source;
  if (!s?.ip) return 'inside the broker';
  return `from ${s.ip.includes(':') ? `[${s.ip}]` : s.ip}:${s.port ?? 0}`;
}

function who(e: CaptureEvent, word: 'client' | 'Client' = 'client'): string {
  return `${word} ${q(e.mqtt?.client_id)}${e.user ? ` (user ${q(e.user.name)})` : ''}`;
}

/** MQTT 5: the reason codes of the DISCONNECT packets that ended the session, if any. */
function disconnectCodes(m: NonNullable<CaptureEvent['mqtt']>): string {
  const codes = [
    m.reason_code !== undefined ? `the client's DISCONNECT reason code ${m.reason_code}` : '',
    m.server_reason_code !== undefined ? `the broker's DISCONNECT reason code ${m.server_reason_code}` : '',
  ].filter(Boolean);
  return codes.length ? ` (${codes.join(', ')})` : '';
}

/** The one readable sentence of `message`, made at flush time (never on the hot path). */
export function describe(e: CaptureEvent): string {
  const m = e.mqtt ?? {};
  const qos = `QoS ${m.qos ?? 0}${m.retain ? ', retained' : ''}${m.dup ? ', duplicate' : ''}`;
  switch (e.event.action) {
    case 'broker-starting': {
      const ls = (e.mqprobe?.listeners as { bind: string; port: number }[] | undefined) ?? [];
      return `mqprobe ${e.observer.version} (${e.service.id}) starting on ${ls.map((l) => `${l.bind || '*'}:${l.port}`).join(', ') || 'no listener'}`;
    }
    case 'broker-stopped':
      return `mqprobe ${e.observer.version} (${e.service.id}) stopped`;
    case 'connection-opened':
      return `Connection opened ${from(e)} on ${e.observer.ingress?.interface.name ?? 'an internal stream'}`;
    case 'client-connected':
      return `Client ${q(m.client_id)} connected ${from(e)}${e.user ? ` as user ${q(e.user.name)}` : ''} (protocol level ${m.protocol_version}, ${m.clean_session ? 'clean session' : 'persistent session'}, keepalive ${m.keepalive} s)`;
    case 'connection-refused':
      return `Connection of ${who(e)} ${from(e)} refused: ${e.event.reason} (${m.reason_code === undefined ? 'closed before CONNACK' : `CONNACK ${m.protocol_version === 5 ? 'reason' : 'return'} code ${m.reason_code}`})`;
    case 'client-disconnected':
      return `Client ${q(m.client_id)} ${from(e)} disconnected: ${e.event.reason}${e.error ? ` (${e.error.message})` : ''}${disconnectCodes(m)}`;
    case 'keepalive-timeout':
      return `Client ${q(m.client_id)} ${from(e)} sent nothing within 1.5 × its keepalive of ${m.keepalive} s`;
    case 'protocol-error':
      return `Protocol error on the connection ${from(e)}${m.client_id ? ` of client ${q(m.client_id)}` : ''}: ${e.error?.message ?? 'unknown'}`;
    case 'publish-received':
      return `${who(e, 'Client')} published ${m.payload_size} bytes to ${q(m.topic)} (${qos})`;
    case 'publish-denied':
      return `Publish of ${m.payload_size} bytes by ${who(e)} to ${q(m.topic)} denied (${qos})`;
    case 'will-published':
      return `Will of ${who(e)} published to ${q(m.topic)} (${m.will?.payload_size ?? 0} bytes)`;
    case 'subscription-granted':
      return `${who(e, 'Client')} subscribed to ${q(m.topic)} (QoS ${m.qos})`;
    case 'subscription-denied':
      return `Subscription of ${who(e)} to ${q(m.topic)} denied (requested QoS ${m.qos})`;
    case 'unsubscribed':
      return e.event.reason === 'session-ended'
        ? `Subscription of ${who(e)} to ${q(m.topic)} ended with its session`
        : `${who(e, 'Client')} unsubscribed from ${q(m.topic)}`;
    case 'ping-received':
      return `${who(e, 'Client')} sent PINGREQ`;
    case 'publish-acknowledged':
      return `${who(e, 'Client')} acknowledged message ${m.message_id ?? '?'}${m.topic !== undefined ? ` on ${q(m.topic)}` : ''}`;
    case 'publish-delivered':
      return `${m.payload_size} bytes on ${q(m.topic)} handed to ${who(e)} (${qos})`;
    case 'http-refused': {
      const h = e.http as { request: { method: string }; response: { status_code: number } };
      const more = (e.mqprobe?.http as { suppressed?: number } | undefined)?.suppressed;
      return `HTTP ${h.request.method} ${q((e.url as { path: string }).path)} ${from(e)}${e.user ? ` (user ${q(e.user.name)})` : ''} refused: ${e.event.reason} (status ${h.response.status_code})${more ? `; ${more} refusals before it in the same second were not recorded one by one` : ''}`;
    }
    case 'capture-dropped': {
      const d = e.mqprobe?.capture as
        { sink: string; dropped: number; first_sequence: number; last_sequence: number; run?: string } | undefined;
      if (e.event.reason === 'crash')
        return `Capture run ${d?.run} ended without a clean stop: sink ${d?.sink} cannot account for ${d?.dropped} events (event.sequence ${d?.first_sequence}–${d?.last_sequence}; any recorded after ${d?.last_sequence} are not known)`;
      return `Capture sink ${d?.sink} dropped ${d?.dropped} events (event.sequence ${d?.first_sequence}–${d?.last_sequence}): ${e.event.reason}`;
    }
    case 'bridge-connected':
    case 'bridge-disconnected':
    case 'bridge-connect-failed': {
      const b = e.mqprobe?.bridge as { connection: string; address?: string; retry_in_s?: number } | undefined;
      const what = { 'bridge-connected': 'connected', 'bridge-disconnected': 'disconnected', 'bridge-connect-failed': 'failed to connect' }[
        e.event.action
      ];
      const retry = b?.retry_in_s === undefined ? '' : `; retrying in ${b.retry_in_s.toFixed(1)} s`;
      return `Bridge ${q(b?.connection)} ${what}${b?.address ? ` (${b.address})` : ''}${e.event.reason ? `: ${e.event.reason}` : ''}${retry}`;
    }
    case 'kafka-bridge-delivering':
    case 'kafka-bridge-failing': {
      const k = e.mqprobe?.kafka_bridge as { name: string } | undefined;
      return e.event.action === 'kafka-bridge-delivering'
        ? `Kafka bridge ${q(k?.name)} delivers to Kafka`
        : `Kafka bridge ${q(k?.name)} cannot deliver to Kafka: ${e.event.reason}`;
    }
    default:
      return e.event.action;
  }
}
