import { isUtf8 } from 'node:buffer';
import type { Client } from './vendor/aedes/aedes.js';
import { wrappedParser } from './parser-prototype.js';

const CHECKED = Symbol('mqprobe.wellFormedStrings');
const REFUSED = Symbol('mqprobe.refusedString');

interface StringParser {
  _pos: number;
  _list: { slice(start: number, end: number): Buffer };
  _parseString(maybeBuffer?: boolean): string | null;
  _emitError(err: Error): void;
  [CHECKED]?: boolean;
  [REFUSED]?: Error;
}

/**
 * MQTT-1.5.3-1 and -2: a UTF-8 string in a packet (client id, user name, will topic, topics, filters,
 * MQTT 5 string properties) must be well-formed and must not contain U+0000, and the receiver closes
 * the connection when it is not. mqtt-packet decodes without checking (ill-formed bytes become U+FFFD,
 * NUL passes), so here each decoded string's bytes are checked; a bad one fails the parse with an error
 * naming the rule, which closes that one connection and is captured as a protocol error, as Mosquitto
 * closes it. The parser would report its own "cannot parse" error next: that one is replaced by ours.
 *
 * The check wraps the parser's prototype once and is on for the parsers marked here: a connection
 * holds a flag, not two closures (mqtt.js clients in the same process share the prototype, unmarked).
 */
export function requireWellFormedStrings(client: Client): void {
  wrappedParser(client, checkStrings)[CHECKED] = true;
}

function checkStrings(proto: StringParser): void {
  const parseString = proto._parseString;
  const emitError = proto._emitError;
  proto._parseString = function (this: StringParser, maybeBuffer?: boolean) {
    if (!this[CHECKED]) return parseString.call(this, maybeBuffer);
    const start = this._pos + 2;
    const result = parseString.call(this, maybeBuffer);
    if (result === null) return null;
    const bytes = this._list.slice(start, this._pos);
    if (isUtf8(bytes) && !bytes.includes(0)) return result;
    this[REFUSED] = new Error('a string in the packet is not well-formed UTF-8 or contains U+0000 (MQTT-1.5.3-1, MQTT-1.5.3-2)');
    return null;
  };
  proto._emitError = function (this: StringParser, err: Error) {
    if (!this[CHECKED]) return emitError.call(this, err);
    const e = this[REFUSED] ?? err;
    this[REFUSED] = undefined;
    emitError.call(this, e);
  };
}
