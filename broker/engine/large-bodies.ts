import type { Client } from './vendor/aedes/aedes.js';
import { LARGE_PAYLOAD_BYTES } from './large-packets.js';

/** mqtt-packet's parser (9.x), as far as it is used here. */
interface PacketParser {
  parse(buf: Buffer): number;
  packet: { cmd?: string; length: number };
  error: Error | null;
  /** Index into `_states`; 2 is `_parsePayload`, waiting for `packet.length` bytes of body. */
  _stateCounter: number;
  _list: { length: number; copy(dst: Buffer): Buffer; consume(n: number): unknown; append(buf: Buffer): unknown };
}

const PARSING_BODY = 2;

/**
 * Assembles the body of a large PUBLISH in one buffer as it arrives. mqtt-packet keeps the socket's
 * 64 KiB read chunks in a list until the whole packet is there, then copies them into the payload:
 * a 250 MB message left 4,000 chunks of glibc's heap in use at once, and once freed, the heap stayed
 * that large (fragmented, so not trimmed): 422–454 MB after four such messages where the broker started
 * at 153 MB (bench/memory/large-messages.ts). Here, once the fixed header of a PUBLISH announces
 * LARGE_PAYLOAD_BYTES or more (and no more than max_packet_size allows), one
 * buffer of that length is allocated outside the heap (Buffer.allocUnsafeSlow: glibc maps a block above
 * its mmap threshold, at most 32 MiB, on its own and unmaps it whole when freed) and every chunk is copied into it as it comes, so
 * each chunk is garbage right away and its memory is reused for the next read. The pages of the buffer
 * are only committed as the body is written into them: announcing a length costs no resident memory.
 * The parser then finds the body in one buffer and hands out the payload as a view of it (no second copy).
 */
export function assembleLargeBodies(client: Client, maxPacketSize: number): void {
  const parser = (client as unknown as { _parser: PacketParser })._parser;
  const parse = parser.parse.bind(parser);
  let body: Buffer | undefined;
  let filled = 0;
  parser.parse = (buf: Buffer): number => {
    if (body) {
      const n = Math.min(buf.length, body.length - filled);
      buf.copy(body, filled, 0, n);
      filled += n;
      if (filled < body.length) return filled;
      parser._list.append(body);
      body = undefined;
      // the rest of this read belongs to the next packets
      return parse(buf.subarray(n));
    }
    const left = parse(buf);
    const { packet, _list: list } = parser;
    if (
      !parser.error &&
      parser._stateCounter === PARSING_BODY &&
      packet.cmd === 'publish' &&
      packet.length >= LARGE_PAYLOAD_BYTES &&
      // an MQTT 5 client's oversized packet is refused by the engine, later: never allocated for
      (maxPacketSize === 0 || packet.length < maxPacketSize) &&
      list.length < packet.length
    ) {
      try {
        body = Buffer.allocUnsafeSlow(packet.length);
      } catch {
        return left; // no address space for it: the parser's own list gathers the body, as before
      }
      filled = list.length;
      list.copy(body);
      list.consume(filled);
    }
    return left;
  };
}
