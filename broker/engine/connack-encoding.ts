/**
 * CONNACKs to MQTT 3.1 / 3.1.1 clients as one ready buffer: mqtt-packet writes the four bytes of a
 * CONNACK as four writes (and corks the socket until the next tick), once per connection, which
 * in a connection storm is a Writable entry per byte. There are few distinct CONNACKs (session
 * present or not, six return codes), so each is made once and shared. The bytes are what
 * mqtt-packet writes (test/broker/publish-encoding.test.ts compares them).
 */
const made = new Map<number, Buffer>();

export interface ConnackLike {
  cmd: string;
  returnCode?: unknown;
  sessionPresent?: unknown;
}

/** The wire bytes of a 3.1/3.1.1 CONNACK, or undefined when mqtt-packet must write it (MQTT 5, a return code it would refuse). */
export function encodedConnack(p: ConnackLike, protocolVersion: number | undefined): Buffer | undefined {
  if (p.cmd !== 'connack' || protocolVersion === 5) return undefined;
  const rc = p.returnCode;
  if (typeof rc !== 'number' || !Number.isInteger(rc) || rc < 0 || rc > 255) return undefined;
  const present = p.sessionPresent ? 1 : 0;
  const key = rc * 2 + present;
  let bytes = made.get(key);
  if (!bytes) made.set(key, (bytes = Buffer.from([0x20, 0x02, present, rc])));
  return bytes;
}
