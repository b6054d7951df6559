import { isUtf8 } from 'node:buffer';
import type { Client } from './vendor/aedes/aedes.js';

interface StringParser {
  _pos: number;
  _list: { slice(start: number, end: number): Buffer };
  _parseString(maybeBuffer?: boolean): string | null;
  _emitError(err: Error): void;
}

/**
 * MQTT-1.5.3-1 and -2: a UTF-8 string in a packet (client id, user name, will topic, topics, filters,
 * MQTT 5 string properties) must be well-formed and must not contain U+0000, and the receiver closes
 * the connection when it is not. mqtt-packet decodes without checking (ill-formed bytes become U+FFFD,
 * NUL passes), so here each decoded string's bytes are checked; a bad one fails the parse with an error
 * naming the rule, which closes that one connection and is captured as a protocol error, as Mosquitto
 * closes it. The parser would report its own "cannot parse" error next: that one is replaced by ours.
 */
export function requireWellFormedStrings(client: Client): void {
  const parser = (client as unknown as { _parser: StringParser })._parser;
  const parseString = parser._parseString;
  const emitError = parser._emitError;
  let refused: Error | undefined;
  parser._parseString = function (this: StringParser, maybeBuffer?: boolean) {
    const start = this._pos + 2;
    const result = parseString.call(this, maybeBuffer);
    if (result === null) return null;
    const bytes = this._list.slice(start, this._pos);
    if (isUtf8(bytes) && !bytes.includes(0)) return result;
    refused = new Error('a string in the packet is not well-formed UTF-8 or contains U+0000 (MQTT-1.5.3-1, MQTT-1.5.3-2)');
    return null;
  };
  parser._emitError = function (this: StringParser, err: Error) {
    const e = refused ?? err;
    refused = undefined;
    emitError.call(this, e);
  };
}
