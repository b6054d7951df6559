import type { Client } from 'aedes';

interface PacketParser {
  packet: { length: number };
  _parseLength(): boolean;
  _emitError(err: Error): void;
}

/**
 * Enforces max_packet_size before the body is buffered: mqtt-packet's parser has no limit of
 * its own, so the length state is wrapped and an oversized packet fails the parse (which closes
 * that one connection and nothing else).
 */
export function limitPacketSize(client: Client, max: number): void {
  const parser = (client as unknown as { _parser: PacketParser })._parser;
  const parseLength = parser._parseLength;
  parser._parseLength = function (this: PacketParser) {
    const done = parseLength.call(this);
    if (done && this.packet.length > max) {
      this._emitError(new Error(`packet of ${this.packet.length} bytes exceeds max_packet_size ${max}`));
      return false;
    }
    return done;
  };
}
