import type { Client } from './vendor/aedes/aedes.js';
import { wrappedParser } from './parser-prototype.js';

const MAX = Symbol('mqprobe.maxPacketSize');

interface PacketParser {
  packet: { length: number };
  client?: { version?: number };
  _parseLength(): boolean;
  _emitError(err: Error): void;
  [MAX]?: number;
}

/** Bytes of the fixed header: the type byte and the variable-length remaining length. */
function fixedHeaderBytes(remaining: number): number {
  return 1 + (remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4);
}

/**
 * Enforces max_packet_size (the whole packet, fixed header included, as MQTT 5 defines it) before the
 * body is buffered: mqtt-packet's parser has no limit of its own, so the length state is wrapped and an
 * oversized packet fails the parse (which closes that one connection and nothing else). Once an MQTT 5
 * client is connected the engine checks instead (its maximumPacketSize), so that the client is told:
 * DISCONNECT 0x95, as from Mosquitto.
 *
 * The parser's prototype is wrapped once; the limit is a property of each broker connection's parser
 * (mqtt.js clients in the same process share the prototype and have none).
 */
export function limitPacketSize(client: Client, max: number): void {
  wrappedParser(client, checkLength)[MAX] = max;
}

function checkLength(proto: PacketParser): void {
  const parseLength = proto._parseLength;
  proto._parseLength = function (this: PacketParser) {
    const done = parseLength.call(this);
    const max = this[MAX];
    if (max === undefined || this.client?.version === 5) return done;
    const size = done ? this.packet.length + fixedHeaderBytes(this.packet.length) : 0;
    if (size > max) {
      this._emitError(new Error(`packet of ${size} bytes exceeds max_packet_size ${max}`));
      return false;
    }
    return done;
  };
}
