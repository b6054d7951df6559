import t from 'tap';
import { once } from 'node:events';
import { duplexPair } from '../../broker/duplex-pair.js';

// broker/duplex-pair.ts on its own: the in-process "socket" of the beats and the bridges' local side.

t.test('pieces written while corked reach the other end as one chunk, in order', async (t) => {
  const [a, b] = duplexPair();
  const chunks: Buffer[] = [];
  b.on('data', (c: Buffer) => chunks.push(c));
  a.cork();
  for (const piece of ['\x30', '\x07', '\x00\x01', 't', '', 'hello']) a.write(piece);
  process.nextTick(() => a.uncork());
  a.write('!');
  await new Promise((r) => setImmediate(r));
  t.equal(chunks.length, 1, 'one chunk for the corked pieces (one parse at the reader, not six)');
  t.equal(Buffer.concat(chunks).toString('latin1'), '\x30\x07\x00\x01thello!', 'nothing lost, nothing reordered');
  const next = once(b, 'data');
  a.write('after');
  await next;
  t.equal(Buffer.concat(chunks).toString('latin1').endsWith('after'), true, 'an uncorked write passes on its own');
});

t.test('corked or not, what is written to a side whose peer is gone is dropped and its callback still called', async (t) => {
  const [a, b] = duplexPair();
  b.destroy();
  await once(b, 'close');
  const done: string[] = [];
  a.on('error', () => undefined);
  a.cork();
  a.write('x', () => done.push('x'));
  a.write('y', () => done.push('y'));
  a.uncork();
  a.write('z', () => done.push('z'));
  await new Promise((r) => setImmediate(r));
  t.same(done, ['x', 'y', 'z'], 'every write completed, none threw');
});
