import { createHash } from 'node:crypto';

/** How long a message the bridge put into the local broker is expected back on its own subscription. */
const ECHO_WINDOW_MS = 10_000;

/**
 * No-local for the bridge's local client. Mosquitto never hands a bridge the messages it brought in
 * itself; the engine (Aedes 1.2, MQTT 3.1.1) does not apply no-local, so a message the bridge publishes
 * locally on a topic its own `out` subscriptions match comes back to it. The bridge notes each such
 * message and drops its first copy coming back (same topic and payload, within ECHO_WINDOW_MS): the
 * broker delivers to the bridge in routing order, so the copy dropped is the echo, or an identical
 * message whose content then still crosses once.
 */
export class EchoFilter {
  private readonly expected = new Map<string, number[]>();

  /** A message the bridge is publishing locally that its own subscriptions will hand back. */
  expect(topic: string, payload: Buffer, now = Date.now()): void {
    const k = key(topic, payload);
    const list = this.expected.get(k);
    if (list) list.push(now);
    else this.expected.set(k, [now]);
  }

  /** Whether a local message is the echo of one the bridge brought in (it is then forgotten). */
  isEcho(topic: string, payload: Buffer, now = Date.now()): boolean {
    if (this.expected.size === 0) return false;
    const k = key(topic, payload);
    const list = this.expected.get(k);
    if (!list) return false;
    while (list.length && now - list[0] > ECHO_WINDOW_MS) list.shift();
    const hit = list.length > 0;
    if (hit) list.shift();
    if (list.length === 0) this.expected.delete(k);
    return hit;
  }
}

function key(topic: string, payload: Buffer): string {
  return `${topic}\u0000${createHash('sha1').update(payload).digest('base64')}`;
}
