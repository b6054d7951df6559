import { createRequire } from 'node:module';
import mqttPacket from 'mqtt-packet';

const require = createRequire(import.meta.url);
const fromMqttPacket = createRequire(require.resolve('mqtt-packet'));
/** The plain buffer list of `bl`, the package mqtt-packet buffers its input with. */
const { BufferList } = fromMqttPacket('bl') as { BufferList: new () => object };
const Packet = fromMqttPacket('./packet.js') as new () => object;

/** Marks the prototype once done. */
const RESET = Symbol('mqprobe.plainParserBuffers');

interface ParserState {
  packet: object;
  error: Error | null;
  _list: object;
  _stateCounter: number;
  _resetState(): void;
}

/**
 * mqtt-packet 9's parser resets its state (at construction and after an error) with a fresh
 * `bl()`: a BufferListStream, a whole readable-stream Duplex (two stream states, listeners)
 * that the parser only ever uses as a buffer list. In a connection storm that construction
 * was 2.4 % of the broker's CPU per connection. This installs, once, the same reset with bl's
 * plain BufferList, which has every method the parser and broker/engine/ use (append, consume,
 * length, readUInt*, slice, copy, toString). Parsers of mqtt.js clients in the process share
 * the prototype and get the same, equivalent, list.
 */
export function usePlainParserBuffers(): void {
  const proto = Object.getPrototypeOf(mqttPacket.parser()) as ParserState;
  if (Object.hasOwn(proto, RESET)) return;
  // the reset replaced is mqtt-packet 9's, line for line; another version must be looked at again
  if (!/this\._list = bl\(\)/.test(proto._resetState.toString()))
    throw new Error('parser-buffers: mqtt-packet changed its parser reset; look at broker/engine/parser-buffers.ts again');
  Object.defineProperty(proto, RESET, { value: true });
  proto._resetState = function resetState(this: ParserState) {
    this.packet = new Packet();
    this.error = null;
    this._list = new BufferList();
    this._stateCounter = 0;
  };
}
