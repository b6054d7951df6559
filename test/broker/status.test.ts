import t from 'tap';
import { MAX_ERROR_CHARS, sanitiseError, StatusRegistry } from '../../broker/status.js';

t.test('last errors are shown without credentials, on one line, bounded', async (t) => {
  const cases: [input: unknown, secret: string, kept: RegExp][] = [
    [new Error('connect ECONNREFUSED redis://admin:s3cr3t-Pw@127.0.0.1:6379'), 's3cr3t-Pw', /redis:\/\/127\.0\.0\.1:6379/],
    [new Error('GET https://user:p@ss@w0rd@es.example:9200/_bulk failed'), 'w0rd', /https:\/\/es\.example:9200\/_bulk failed/],
    ['login failed: password=hunter2-xyz; retrying', 'hunter2-xyz', /password=\[redacted\]; retrying/],
    ['opencti: token: "9f1c-secret-token" refused', '9f1c-secret-token', /token: \[redacted\] refused/],
    ['request had Authorization: Bearer eyJhbGciOi.abc.def', 'eyJhbGciOi', /Authorization: \[redacted\]/],
    ['header Basic dXNlcjpwYXNzd29yZA== refused', 'dXNlcjpwYXNzd29yZA', /Basic \[redacted\] refused/],
    ['api_key=AKIA1234567890 not accepted', 'AKIA1234567890', /api_key=\[redacted\]/],
  ];
  for (const [input, secret, kept] of cases) {
    const shown = sanitiseError(input);
    t.notOk(shown.includes(secret), `no secret in: ${shown}`);
    t.match(shown, kept, 'the rest of the message is kept');
  }
  const lines = sanitiseError('first line\r\nsecond\u0000line\u001b[31m red\u0085');
  t.notMatch(lines, /[\u0000-\u001f\u007f-\u009f]/, `control characters replaced: ${JSON.stringify(lines)}`);
  const huge = sanitiseError(new Error('x'.repeat(1_000_000)));
  t.equal(huge.length, MAX_ERROR_CHARS, 'a 1 MB message is cut to the bound');
  t.ok(huge.endsWith('…'), 'and says it was cut');
  t.equal(sanitiseError({ toString: () => 'an object error' }), 'an object error', 'a thrown non-Error is shown by its text');
  t.equal(sanitiseError(undefined), 'undefined');
});

t.test('the registry: one entry per kind and name, replaced by a restart, removed, counted or read', async (t) => {
  const reg = new StatusRegistry();
  const beat = reg.register('beat', 'zeek', 'starting');
  let delivered = 0;
  reg.register('kafka-bridge', 'k', 'connecting', () => delivered);
  const first = reg.register('bridge', 'b', 'connecting');
  beat.count(3);
  beat.count();
  beat.state('running');
  delivered = 42;
  first.error(new Error('CONNACK refused (5): Not authorized'));
  t.match(reg.list(), [
    { kind: 'beat', name: 'zeek', state: 'running', records: 4, lastError: null },
    { kind: 'bridge', name: 'b', state: 'connecting', records: 0, lastError: 'CONNACK refused (5): Not authorized', lastErrorAt: String },
    { kind: 'kafka-bridge', name: 'k', records: 42 },
  ]);
  const second = reg.register('bridge', 'b', 'connected'); // a reload's replacement
  first.remove(); // the replaced bridge's late removal does not take the new entry
  t.match(
    reg.list().find((p) => p.kind === 'bridge'),
    { state: 'connected', lastError: null },
    'the replacement holds the entry',
  );
  second.remove();
  t.same(
    reg.list().map((p) => p.kind),
    ['beat', 'kafka-bridge'],
    'removed',
  );
});
