import mqttPacket from 'mqtt-packet';
import { encodedConnack } from './connack-encoding.js';
import { encodedQoS0, type PublishLike } from './publish-encoding.js';

export interface WrittenPacket extends PublishLike {
  cmd: string;
  returnCode?: number;
  sessionPresent?: boolean;
  qos?: number;
  payload?: Buffer | string;
}

/** Called with each packet written and the stream it goes to (one function serves every stream). */
export type WriteObserver = (packet: WrittenPacket, stream: object) => void;

const observers = new WeakMap<object, readonly WriteObserver[]>();
/**
 * The observer lists, shared: every connection of a broker has the same observers, so a connection
 * holds a reference to one list instead of an array of its own (list → observer added → next list).
 */
const EMPTY: readonly WriteObserver[] = Object.freeze([]);
const extended = new WeakMap<readonly WriteObserver[], WeakMap<WriteObserver, readonly WriteObserver[]>>();
let hooked = false;

function withObserver(list: readonly WriteObserver[], fn: WriteObserver): readonly WriteObserver[] {
  let next = extended.get(list);
  if (!next) extended.set(list, (next = new WeakMap()));
  let found = next.get(fn);
  if (!found) next.set(fn, (found = Object.freeze([...list, fn])));
  return found;
}

/**
 * Calls `fn` for every MQTT packet Aedes writes to `stream`. Aedes serialises every outbound packet
 * through mqtt-packet's writeToStream, so wrapping that one function sees each packet once, by type,
 * without touching the socket (a 'data' listener would break Aedes' own reads). `fn` should be one
 * function for all streams, not a closure per stream: it is what each idle connection keeps.
 */
export function observeWrites(stream: object, fn: WriteObserver): void {
  if (!hooked) {
    hooked = true;
    const lib = mqttPacket as unknown as {
      writeToStream: (p: WrittenPacket, s: { write(b: Buffer): boolean }, o?: { protocolVersion?: number }) => boolean;
    };
    const write = lib.writeToStream;
    lib.writeToStream = function (packet, s, opts) {
      const list = observers.get(s);
      if (list) for (const f of list) f(packet, s);
      // a QoS 0 PUBLISH (3.1.1, or 5 without properties): one buffer, encoded once for all its subscribers; a CONNACK: one of a few ready buffers
      const bytes = encodedQoS0(packet, opts?.protocolVersion) ?? encodedConnack(packet, opts?.protocolVersion);
      return bytes ? s.write(bytes) : write.call(this, packet, s, opts);
    };
  }
  observers.set(stream, withObserver(observers.get(stream) ?? EMPTY, fn));
}
