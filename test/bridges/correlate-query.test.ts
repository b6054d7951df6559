import t from 'tap';
import { alertAddresses, HostQueries, socketQuery } from '../../bridges/correlate/query.js';

t.test('the SQL is bounded to the peer, IPv4 also as IPv4-mapped, IPv6 as is; without a peer every connected socket', async (t) => {
  t.match(
    socketQuery('ab', '203.0.113.5'),
    /^\/\* mqprobe-correlate ab \*\/ SELECT .* WHERE s\.remote_address IN \('203\.0\.113\.5', '::ffff:203\.0\.113\.5'\);$/,
  );
  t.match(socketQuery('ab', '2001:db8::5'), /WHERE s\.remote_address = '2001:db8::5';$/);
  t.match(socketQuery('ab', undefined), /WHERE s\.remote_port != 0 AND s\.remote_address NOT IN \('', '0\.0\.0\.0', '::'\);$/);
});

t.test('alert addresses: the indicator first, normalised, no duplicates, no text that is not an address', async (t) => {
  t.same(
    alertAddresses({
      source: { ip: '::ffff:198.51.100.7' },
      destination: { ip: "192.0.2.53'; DROP TABLE processes; --" },
      threat: { indicator: { ip: '203.0.113.50' } },
    }),
    ['203.0.113.50', '198.51.100.7'],
  );
  t.same(alertAddresses({ source: { ip: 42 }, destination: 'x', threat: null }), []);
});

t.test('rate limit per host; answers are matched by tag, query id and host, each once', async (t) => {
  const sent: { sql: string; hosts: string[] }[] = [];
  const q = new HostQueries(60_000, (c) => sent.push(c));
  const reason = { alertId: 'A1', rule: 'threat-intel' };
  t.equal(q.ask('ws-7', '203.0.113.50', reason, 1000), 'sent');
  t.equal(q.ask('ws-7', '203.0.113.51', { alertId: 'A2', rule: 'x' }, 30_000), 'rate-limited');
  t.equal(q.ask('web-1', undefined, { alertId: 'A3', rule: 'x' }, 30_000), 'sent', 'another host has its own budget');
  t.equal(q.ask('ws-7', '203.0.113.52', { alertId: 'A4', rule: 'x' }, 61_000), 'sent', 'after the interval');
  t.same(
    sent.map((s) => s.hosts),
    [['ws-7'], ['web-1'], ['ws-7']],
  );
  t.equal(q.answered({ queryId: 'q1', hostIdentifier: 'ws-7' }), undefined, 'an id never accepted');
  q.accepted({ id: 'q1', sql: sent[0].sql, hosts: ['ws-7'] });
  q.accepted({ id: 'q9', sql: '/* mqprobe-correlate 0123 */ select 1', hosts: ['ws-7'] });
  t.equal(q.answered({ queryId: 'q1', hostIdentifier: 'web-1' }), undefined, 'another host cannot answer for ws-7');
  t.match(q.answered({ queryId: 'q1', hostIdentifier: 'ws-7' }), { alertId: 'A1', host: 'ws-7', peer: '203.0.113.50', queryId: 'q1' });
  t.equal(q.answered({ queryId: 'q1', hostIdentifier: 'ws-7' }), undefined, 'once');
  t.equal(q.answered({ queryId: 'q9', hostIdentifier: 'ws-7' }), undefined, 'not ours');
});
