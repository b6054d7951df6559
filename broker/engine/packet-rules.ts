import type { Client } from './vendor/aedes/aedes.js';
import { wrappedParser } from './parser-prototype.js';

const CHECKED = Symbol('mqprobe.packetRules');

interface RuleParser {
  error: Error | null;
  emit(event: string | symbol, ...args: unknown[]): boolean;
  _emitError(err: Error): void;
  client: { conn: NodeJS.WritableStream; connackSent: boolean };
  [CHECKED]?: boolean;
}

interface ParsedPacket {
  cmd: string;
  protocolVersion?: number;
  will?: { qos?: number };
  username?: string;
  password?: Buffer;
  unsubscriptions?: string[];
}

/** What a parsed packet breaks of the format mqtt-packet does not check, or undefined. */
function brokenRule(p: ParsedPacket): string | undefined {
  if (p.cmd === 'connect') {
    if (p.will && p.will.qos === 3) return 'will QoS 3 (MQTT-3.1.2-14, MQTT 5: MQTT-3.1.2-12)';
    // MQTT 5 allows a password alone; Mosquitto 2.0.11 closes a 3.1 connection with one too
    if (p.protocolVersion !== 5 && p.password !== undefined && p.username === undefined)
      return 'a password without a user name (MQTT-3.1.2-22)';
  }
  if (p.cmd === 'unsubscribe' && p.unsubscriptions?.length === 0) return 'UNSUBSCRIBE without a topic filter (MQTT-3.10.3-2)';
  return undefined;
}

/** CONNACK "unacceptable protocol version" in the 3.1.1 form: a client of an unknown level reads no other. */
const CONNACK_UNACCEPTABLE_PROTOCOL = Buffer.from([0x20, 0x02, 0x00, 0x01]);

/**
 * Rules of the packet format that mqtt-packet 9 leaves unchecked, as Mosquitto 2.0.11 checks them (found by
 * test/conformance): a parsed packet that breaks one fails the parse as a malformed one does (the
 * connection closes, capture records a protocol error) instead of reaching Aedes. And a CONNECT of a
 * protocol level the broker does not speak gets CONNACK 0x01 before the close, as [MQTT-3.1.2-2] requires;
 * mqtt-packet only reports "Invalid protocol version".
 */
export function requirePacketRules(client: Client): void {
  wrappedParser(client, checkRules)[CHECKED] = true;
}

/**
 * Wraps the parser prototype once (wrappedParser), on for the parsers marked above: a connection
 * holds a flag, not two closures; `client` is the engine's, which it sets on its parser.
 */
function checkRules(proto: RuleParser): void {
  const emit = proto.emit;
  proto.emit = function (this: RuleParser, event, ...args) {
    const broken = this[CHECKED] && event === 'packet' ? brokenRule(args[0] as ParsedPacket) : undefined;
    // _emitError also sets `error`, which stops the parse of what follows in the same read
    if (broken) return (this._emitError(new Error(`malformed packet: ${broken}`)), true);
    return emit.call(this, event, ...args);
  };
  const emitError = proto._emitError;
  proto._emitError = function (this: RuleParser, err: Error) {
    if (!this[CHECKED] || err.message !== 'Invalid protocol version' || this.client.connackSent) return emitError.call(this, err);
    this.error = err;
    this.client.conn.write(CONNACK_UNACCEPTABLE_PROTOCOL, () => emitError.call(this, err));
  };
}
