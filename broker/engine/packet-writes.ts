import mqttPacket from 'mqtt-packet';
import { encodedQoS0, type PublishLike } from './publish-encoding.js';

export interface WrittenPacket extends PublishLike {
  cmd: string;
  qos?: number;
  payload?: Buffer | string;
}

type Observer = (packet: WrittenPacket) => void;

const observers = new WeakMap<object, Observer[]>();
let hooked = false;

/**
 * Calls `fn` for every MQTT packet Aedes writes to `stream`. Aedes serialises every outbound packet
 * through mqtt-packet's writeToStream, so wrapping that one function sees each packet once, by type,
 * without touching the socket (a 'data' listener would break Aedes' own reads).
 */
export function observeWrites(stream: object, fn: Observer): void {
  if (!hooked) {
    hooked = true;
    const lib = mqttPacket as unknown as {
      writeToStream: (p: WrittenPacket, s: { write(b: Buffer): boolean }, o?: { protocolVersion?: number }) => boolean;
    };
    const write = lib.writeToStream;
    lib.writeToStream = function (packet, s, opts) {
      const list = observers.get(s);
      if (list) for (const f of list) f(packet);
      // a QoS 0 PUBLISH to a 3.1.1 client: one buffer, encoded once for all its subscribers
      const bytes = encodedQoS0(packet, opts?.protocolVersion);
      return bytes ? s.write(bytes) : write.call(this, packet, s, opts);
    };
  }
  const list = observers.get(stream);
  if (list) list.push(fn);
  else observers.set(stream, [fn]);
}
