import t from 'tap';
import { DistributedQueue, parseQueryCommand } from '../../bridges/osquery/distributed.js';

t.test('distributed queries: addressed hosts collect once, answer once, expiry', async (t) => {
  let now = 1000;
  const q = new DistributedQueue(60_000, () => now);
  const a = q.add({ sql: 'select 1', hosts: ['h1'] });
  const all = q.add({ sql: 'select 2', hosts: 'all' });
  t.same(q.read('h1'), { [a]: 'select 1', [all]: 'select 2' });
  t.same(q.read('h1'), {}, 'collected once');
  t.same(q.read('h2'), { [all]: 'select 2' }, 'h2 is not addressed by the first query');
  t.equal(q.acceptResult(a, 'h2'), false, 'h2 was not handed query a');
  t.equal(q.acceptResult(a, 'h1'), true);
  t.equal(q.acceptResult(a, 'h1'), false, 'replayed result refused');
  t.equal(q.acceptResult('guessed', 'h1'), false);
  const late = q.add({ sql: 'select 3', hosts: 'all' });
  now += 60_001;
  t.same(q.read('h3'), {}, 'expired query not handed out');
  t.equal(q.acceptResult(late, 'h3'), false);
});

t.test('distributed query commands: validation', async (t) => {
  t.same(parseQueryCommand(Buffer.from('{"sql":"select 1","hosts":"all"}')), { sql: 'select 1', hosts: 'all' });
  t.same(parseQueryCommand(Buffer.from('{"sql":"select 1","hosts":["a"]}')), { sql: 'select 1', hosts: ['a'] });
  for (const bad of [
    'nope',
    '[]',
    '{"sql":"","hosts":"all"}',
    '{"sql":"x","hosts":[]}',
    '{"sql":"x","hosts":[1]}',
    '{"sql":"x","hosts":"some"}',
    '{"hosts":"all"}',
  ]) {
    t.throws(() => parseQueryCommand(Buffer.from(bad)), { name: 'QueryCommandError' }, bad);
  }
});
