import t from 'tap';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { usePlainParserBuffers } from '../../broker/engine/parser-buffers.js';

type Internals = { _list: { pipe?: unknown; on?: unknown; append?: unknown }; _resetState(): void };
// mqtt-packet's own reset (a BufferListStream per parser), kept to compare against
const streamReset = (Object.getPrototypeOf(mqttPacket.parser()) as Internals)._resetState;
usePlainParserBuffers();
usePlainParserBuffers(); // installing twice changes nothing

const connect = mqttPacket.generate({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion: 4,
  clientId: 'dev-1',
  clean: true,
  keepalive: 60,
});
const publish = mqttPacket.generate({
  cmd: 'publish',
  topic: 'a/b',
  payload: Buffer.alloc(70_000, 7),
  qos: 1,
  messageId: 9,
  dup: false,
  retain: false,
});
const subscribe = mqttPacket.generate({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'x/#', qos: 1 }] });

/** What a parser reports for the chunks, in order: each packet as JSON, each error's message. */
function run(kind: 'plain' | 'stream', chunks: Buffer[]): string[] {
  const p = mqttPacket.parser({ protocolVersion: 4 });
  if (kind === 'stream') {
    (p as unknown as Internals)._resetState = streamReset; // this parser keeps mqtt-packet's own lists
    (p as unknown as Internals)._resetState();
  }
  const seen: string[] = [];
  p.on('packet', (x: Packet) => seen.push(JSON.stringify(x)));
  p.on('error', (e: Error) => seen.push(`error: ${e.message}`));
  for (const c of chunks) p.parse(c);
  return seen;
}

const bytes = (b: Buffer) => [...b].map((x) => Buffer.from([x]));
/** A fixed pseudo-random sequence (the same every run). */
function noise(seed: number, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 16;
  return out;
}

t.test("the parser's buffer list is bl's plain list, not a stream", async (t) => {
  const list = (mqttPacket.parser() as unknown as Internals)._list;
  t.equal(typeof list.append, 'function');
  t.equal(list.pipe, undefined, 'no stream methods');
  t.equal(list.on, undefined, 'no event emitter');
});

const cases: [string, Buffer[]][] = [
  ['packets split at every byte', bytes(Buffer.concat([connect, subscribe]))],
  ['packets glued together, a large one among them', [Buffer.concat([connect, publish, subscribe, connect])]],
  ['a large body in uneven chunks', [publish.subarray(0, 5), publish.subarray(5, 40_000), publish.subarray(40_000), subscribe]],
  ['a malformed CONNECT, then a good one', [Buffer.from([0x10, 0x03, 0x00, 0x01, 0x00]), connect, connect]],
  ['a five-byte length field (hostile)', [Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]), subscribe]],
  ['a reserved packet type', [Buffer.from([0x00, 0x00]), connect]],
  ...[1, 2, 3, 4, 5].map((seed): [string, Buffer[]] => [`random bytes, seed ${seed}`, [connect, noise(seed, 2000), subscribe]]),
];
for (const [name, chunks] of cases)
  t.test(`${name}: the same packets and errors as with mqtt-packet's own list`, async (t) => {
    const plain = run('plain', chunks);
    t.ok(plain.length > 0, 'something reported');
    t.same(plain, run('stream', chunks));
  });

t.test('the large body arrives whole', async (t) => {
  const [, pub] = run('plain', [Buffer.concat([connect, publish])]).map((s) => JSON.parse(s) as { payload: { data: number[] } });
  t.equal(pub.payload.data.length, 70_000);
  t.ok(
    pub.payload.data.every((b) => b === 7),
    'payload intact',
  );
});
