import t from 'tap';
import { IndicatorList } from '../../detect/index.js';
import { RULE_SPECS } from '../../detect/rules/index.js';
import { Harness, T0, detectConfig } from './events.js';

const S = 1000;
const MIN = 60 * S;

const refused = (h: Harness, time: number, ip: string, user: string, reason = 'bad-credentials', reasonCode = 5) =>
  h.send('connection-refused', time, { ip, user, clientId: `c-${user}`, reason, reasonCode });

t.test('auth-brute-force: 10 refusals from one address within 60 s alert, 9 do not', async (t) => {
  const h = new Harness();
  for (let i = 0; i < 9; i++) refused(h, T0 + i * 5 * S, '10.0.0.7', 'alice');
  refused(h, T0 + 2 * MIN, '10.0.0.7', 'alice'); // the first one left the window
  t.equal(h.raised().length, 0, '9 within any 60 s: no alert');
  for (let i = 0; i < 9; i++) refused(h, T0 + 2 * MIN + (i + 1) * S, '10.0.0.7', 'alice');
  const [a] = h.raised('auth-brute-force');
  t.ok(a, 'the 10th refusal within 60 s alerts');
  t.equal(a.source?.ip, '10.0.0.7');
  t.equal(a.event.kind, 'alert');
  t.same(a.event.category, ['intrusion_detection']);
  t.equal(a.event.risk_score, 73);
  t.equal(a.mqprobe.detect.evidence.count, 10);
  t.equal((a.mqprobe.detect.evidence.sequences as number[]).length, 10, 'evidence names the 10 triggering events');
  t.equal(a['@timestamp'], new Date(T0 + 2 * MIN + 9 * S).toISOString(), 'timed by the event that completed the evidence');
});

t.test('auth-brute-force counts credential refusals only, by CONNACK code first, by reason second', async (t) => {
  const h = new Harness();
  for (let i = 0; i < 20; i++) refused(h, T0 + i * S, '10.0.0.8', 'x', 'server-limit', 3);
  t.equal(h.raised().length, 0, 'server-limit refusals (CONNACK 3) are no password guessing');
  for (let i = 0; i < 10; i++) h.send('connection-refused', T0 + 30 * S + i, { ip: '10.0.0.9', reasonCode: 0x86 });
  t.equal(h.raised('auth-brute-force').length, 1, 'MQTT 5 code 0x86 without a reason counts');
  for (const [n, code] of [4, 5, 0x86, 0x87, 0x8c].entries()) {
    const ip = `10.0.5.${n}`;
    for (let i = 0; i < 10; i++) refused(h, T0 + MIN + i * S, ip, `u${i}`, 'Connection Refused: login denied by upstream', code);
    t.equal(h.raised('auth-brute-force').filter((a) => a.source?.ip === ip).length, 1, `code ${code} counts whatever the reason text`);
    t.equal(h.raised('credential-stuffing').filter((a) => a.source?.ip === ip).length, 1, `credential-stuffing too (code ${code})`);
  }
  for (let i = 0; i < 10; i++) h.send('connection-refused', T0 + 2 * MIN + i, { ip: '10.0.6.1', reason: 'unknown-user' });
  t.equal(h.raised('auth-brute-force').filter((a) => a.source?.ip === '10.0.6.1').length, 1, 'no code: the reason list decides');
  for (let i = 0; i < 100; i++) refused(h, T0 + 2 * MIN + 30 * S + i, '10.0.6.3', `q${i}`, 'QUOTA_EXCEEDED', 0x97);
  t.same(
    h
      .raised()
      .filter((a) => a.source?.ip === '10.0.6.3')
      .map((a) => a.rule.name),
    ['connection-storm'],
    'MQTT 5 0x97 (quota exceeded) is no credential failure, but 100 of them are a connection storm',
  );
  for (let i = 0; i < 20; i++) refused(h, T0 + 3 * MIN + i, '10.0.6.2', `b${i}`, 'banned', 0x87);
  t.equal(h.raised().filter((a) => a.source?.ip === '10.0.6.2').length, 0, 'refusals of a banned entity do not count again');
});

t.test('credential-stuffing: 5 distinct refused users from one address', async (t) => {
  const h = new Harness();
  for (let i = 0; i < 4; i++) refused(h, T0 + i * MIN, '10.0.1.1', `user${i}`);
  t.equal(h.raised('credential-stuffing').length, 0);
  refused(h, T0 + 4 * MIN, '10.0.1.1', 'user4');
  const [a] = h.raised('credential-stuffing');
  t.ok(a, 'the 5th distinct user alerts');
  t.same((a.mqprobe.detect.evidence.users as string[]).sort(), ['user0', 'user1', 'user2', 'user3', 'user4']);
  const h2 = new Harness();
  for (let i = 0; i < 5; i++) refused(h2, T0 + i * 2 * MIN, '10.0.1.1', `user${i}`);
  t.equal(h2.raised('credential-stuffing').length, 0, 'spread over more than 5 min: no alert');
});

t.test('connection-storm and client-flapping', async (t) => {
  const h = new Harness();
  for (let i = 0; i < 99; i++) h.send('client-connected', T0 + i * 50, { ip: '10.0.2.1', clientId: `dev${i}` });
  t.equal(h.raised('connection-storm').length, 0, '99 attempts: none');
  h.send('connection-refused', T0 + 99 * 50, { ip: '10.0.2.1', clientId: 'devx', reason: 'bad-client-id' });
  t.equal(h.raised('connection-storm').length, 1, 'the 100th attempt within 10 s alerts');
  const f = new Harness();
  for (let i = 0; i < 9; i++) f.send('client-connected', T0 + i * 20 * S, { ip: '10.0.3.1', clientId: 'pump-7' });
  t.equal(f.raised('client-flapping').length, 0);
  f.send('client-connected', T0 + 9 * 20 * S, { ip: '10.0.3.1', clientId: 'pump-7' });
  t.equal(f.raised('client-flapping')[0]?.mqtt?.client_id, 'pump-7');
  for (let i = 0; i < 50; i++) f.send('client-connected', T0 + i * S, { ip: '10.0.3.2', clientId: '$beat/zeek' });
  t.equal(f.raised('client-flapping').length, 1, 'internal $ clients are never reported');
});

t.test('wildcard-subscription: # and $SYS/# by a new client, once; allow-lists', async (t) => {
  const h = new Harness({ config: detectConfig('detect_rule wildcard-subscription allow_clients historian*') });
  const sub = (id: string, topic: string, granted = 0) =>
    h.send(granted >= 128 ? 'subscription-denied' : 'subscription-granted', T0, {
      clientId: id,
      ip: '10.0.4.1',
      subscriptions: [{ topic, qos: 0, granted_qos: granted }],
    });
  sub('dash', 'plant/+/temp');
  sub('dash', 'plant/#');
  t.equal(h.raised().length, 0, 'ordinary filters: none');
  sub('snoop', '#');
  sub('snoop', '#');
  sub('spy', '$SYS/#', 128);
  sub('share', '$share/g/+/#');
  sub('historian-2', '#');
  t.same(
    h.raised('wildcard-subscription').map((a) => a.mqtt?.client_id),
    ['snoop', 'spy', 'share'],
    'one alert per client; a denied one too; historian* allowed',
  );
  t.equal(h.raised('wildcard-subscription')[1].mqprobe.detect.evidence.denied, true);
});

t.test('topic-scan and acl-denials', async (t) => {
  const h = new Harness();
  for (let i = 0; i < 19; i++)
    h.send('subscription-granted', T0 + i * S, { clientId: 'scanner', subscriptions: [{ topic: `a/${i}`, qos: 0, granted_qos: 0 }] });
  t.equal(h.raised('topic-scan').length, 0);
  h.send('subscription-granted', T0 + 19 * S, { clientId: 'scanner', subscriptions: [{ topic: 'a/19', qos: 0, granted_qos: 0 }] });
  t.equal(h.raised('topic-scan').length, 1, '20 distinct filters in 60 s');
  for (let i = 0; i < 49; i++) h.send('publish-received', T0 + i * 100, { clientId: 'prober', topic: `x/${i}`, size: 3 });
  t.equal(h.raised('topic-scan').length, 1);
  h.send('publish-denied', T0 + 5000, { clientId: 'prober', topic: 'x/49', size: 3 });
  t.equal(h.raised('topic-scan').length, 2, '50 distinct publish topics (denied ones too)');
  for (let i = 0; i < 10; i++) h.send('publish-denied', T0 + 6000 + i * S, { clientId: 'writer', topic: 'secret/a', size: 1 });
  const [a] = h.raised('acl-denials');
  t.equal(a?.mqtt?.client_id, 'writer', '10 ACL denials in 60 s');
  t.match(a.message, /publish to secret\/a/);
});

t.test(
  'acl-denials counts MQTT 5 SUBACK 0x87 (not authorized), not 0x9E (shared subscriptions not supported) nor 0x97 (quota)',
  async (t) => {
    const h = new Harness();
    const denied = (time: number, clientId: string, topic: string, code: number) =>
      h.send('subscription-denied', time, { clientId, subscriptions: [{ topic, qos: 1, granted_qos: code }] });
    for (let i = 0; i < 10; i++) denied(T0 + i * S, 'worker', `$share/g/jobs/${i}`, 0x9e);
    for (let i = 0; i < 10; i++) denied(T0 + i * S, 'busy', `q/${i}`, 0x97);
    t.equal(h.raised('acl-denials').length, 0, 'what the broker cannot do is no ACL probing');
    for (let i = 0; i < 10; i++) denied(T0 + 20 * S + i * S, 'prober', `secret/${i}`, 0x87);
    const [a] = h.raised('acl-denials');
    t.equal(a?.mqtt?.client_id, 'prober', '10 MQTT 5 not-authorized refusals in 60 s');
    t.match(a.message, /subscribe to secret\/9/);
  },
);

t.test('publish-rate: a learned baseline, a flood far above it, a burst after reconnect', async (t) => {
  const h = new Harness();
  let time = T0;
  h.send('client-connected', time, { clientId: 'meter', ip: '10.0.5.1' });
  // 2 per 10 s for 10 minutes: past the warm-up
  for (let i = 0; i < 120; i++) h.send('publish-received', (time += 5 * S), { clientId: 'meter', topic: 'm/1', size: 40 });
  t.equal(h.raised().length, 0, 'normal telemetry: none');
  for (let i = 0; i < 45; i++) h.send('publish-received', (time += 100), { clientId: 'meter', topic: 'm/1', size: 40 });
  t.equal(h.raised('publish-rate').length, 0, 'below min_count (50 per 10 s)');
  for (let i = 0; i < 10; i++) h.send('publish-received', (time += 100), { clientId: 'meter', topic: 'm/1', size: 40 });
  const [a] = h.raised('publish-rate');
  t.ok(a, 'a flood of 10/s alerts within 6 s');
  t.ok((a.mqprobe.detect.evidence.baseline as { mean: number }).mean < 3, 'the baseline says what was normal');

  const g = new Harness();
  time = T0;
  g.send('client-connected', time, { clientId: 'logger' });
  for (let i = 0; i < 120; i++) g.send('publish-received', (time += 5 * S), { clientId: 'logger', topic: 'l/1', size: 40 });
  g.send('client-connected', (time += MIN), { clientId: 'logger' });
  for (let i = 0; i < 150; i++) g.send('publish-received', (time += 20), { clientId: 'logger', topic: 'l/1', size: 40 });
  t.equal(g.raised('publish-rate').length, 0, 'store-and-forward flush of 150 within connect_grace: none');
  for (let i = 0; i < 100; i++) g.send('publish-received', (time += 20), { clientId: 'logger', topic: 'l/1', size: 40 });
  t.equal(g.raised('publish-rate').length, 1, 'above max_unlearned even during the grace');
});

t.test('publish-rate without a baseline: max_unlearned', async (t) => {
  const h = new Harness();
  for (let i = 0; i < 199; i++) h.send('publish-received', T0 + i * 10, { clientId: 'new', topic: `n/${i % 5}`, size: 10 });
  t.equal(h.raised('publish-rate').length, 0);
  h.send('publish-received', T0 + 1990, { clientId: 'new', topic: 'n/0', size: 10 });
  t.equal(h.raised('publish-rate').length, 1, '200 in 10 s from a client with no baseline');
});

t.test('payload-size: far above the topic’s usual size; a firmware update drifts', async (t) => {
  const h = new Harness();
  let time = T0;
  for (let i = 0; i < 30; i++) h.send('publish-received', (time += S), { clientId: 's', topic: 'p/1', size: 60 + (i % 7) });
  h.send('publish-received', (time += S), { clientId: 's', topic: 'p/1', size: 900 });
  t.equal(h.raised('payload-size').length, 0, 'below min_bytes');
  h.send('publish-received', (time += S), { clientId: 's', topic: 'p/1', size: 64 * 1024 });
  const [a] = h.raised('payload-size');
  t.equal(a?.mqtt?.topic, 'p/1');
  t.equal(a.mqprobe.detect.evidence.payload_size, 65536);
});

t.test('new-source-network and new-client-id after their learning period', async (t) => {
  const h = new Harness();
  h.send('client-connected', T0, { user: 'alice', ip: '10.1.1.5', clientId: 'a1' });
  h.send('client-connected', T0 + 10 * MIN, { user: 'alice', ip: '10.1.2.5', clientId: 'a1' });
  h.send('client-connected', T0 + 2 * 60 * MIN, { user: 'alice', ip: '10.1.1.99', clientId: 'a1' });
  t.equal(h.raised().length, 0, 'networks learned in the first hour, and the same /24 later: none');
  h.send('client-connected', T0 + 2 * 60 * MIN + 1, { user: 'alice', ip: '192.0.2.1', clientId: 'a1' });
  h.send('client-connected', T0 + 2 * 60 * MIN + 2, { user: 'bob', ip: '192.0.2.1', clientId: 'b-new' });
  h.send('client-connected', T0 + 2 * 60 * MIN + 3, { ip: '192.0.2.1', clientId: 'auto-1234' });
  t.same(
    h.raised('new-source-network').map((a) => a.user?.name),
    ['alice'],
  );
  t.same(
    h.raised('new-client-id').map((a) => a.mqtt?.client_id),
    ['b-new'],
    'generated auto- ids are not reported',
  );
});

t.test('threat-intel: connections, Zeek and osquery records against an indicator list', async (t) => {
  const set = IndicatorList.parse(
    'ip 203.0.113.0/24 bad-net\ndomain evil.example c2\nhash d41d8cd98f00b204e9800998ecf8427e empty\nurl http://x.example/a.php dropper\n',
  );
  const h = new Harness({ indicators: () => set });
  h.send('client-connected', T0, { ip: '198.51.100.1', clientId: 'ok' });
  h.send('client-connected', T0, { ip: '203.0.113.9', clientId: 'intruder' });
  h.send('publish-received', T0, {
    clientId: '$beat/zeek',
    topic: 'beats/zeek/dns',
    payload: JSON.stringify({ ts: 1700000000.1, uid: 'C1', 'id.orig_h': '10.0.0.1', 'id.resp_h': '10.0.0.53', query: 'www.evil.example' }),
  });
  h.send('publish-received', T0, {
    clientId: '$beat/zeek',
    topic: 'beats/zeek/http',
    payload: JSON.stringify({ id: { orig_h: '10.0.0.2', resp_h: '10.0.0.80' }, host: 'x.example', uri: '/a.php' }),
  });
  h.send('publish-received', T0, {
    clientId: '$beat/osquery',
    topic: 'beats/osquery/result/hashes',
    payload: JSON.stringify({
      name: 'pack/hashes',
      hostIdentifier: 'plc-gw',
      columns: { path: '/tmp/x', md5: 'D41D8CD98F00B204E9800998ECF8427E' },
    }),
  });
  h.send('publish-received', T0, { clientId: 'dev', topic: 'beats/zeek/conn', payload: '{not json' });
  h.send('publish-received', T0, { clientId: 'dev', topic: 'other/topic', payload: JSON.stringify({ query: 'evil.example' }) });
  const got = h.raised('threat-intel');
  t.same(
    got.map((a) => a.threat?.indicator.type),
    ['ipv4-addr', 'domain-name', 'url', 'file'],
  );
  t.equal(got[0].mqtt?.client_id, 'intruder');
  t.equal(got[1].source?.ip, '10.0.0.1');
  t.equal((got[3].threat?.indicator.file as { hash: { md5: string } }).hash.md5, 'd41d8cd98f00b204e9800998ecf8427e');
  t.equal(new Harness().send('client-connected', T0, { ip: '203.0.113.9' }).length, 0, 'no indicator set: no intel alerts');
});

t.test('indicator lists: bad lines name the line', async (t) => {
  t.throws(() => IndicatorList.parse('ip 1.2.3.4\nip 300.1.1.1\n', 'ind.txt'), /ind\.txt:2: "300\.1\.1\.1" is not an address/);
  t.throws(() => IndicatorList.parse('mutex abc\n'), /unknown indicator kind "mutex"/);
  t.throws(() => IndicatorList.parse('hash 1234\n'), /not an md5, sha1 or sha256/);
  t.throws(() => IndicatorList.parse('domain\n'), /expected "<ip\|domain\|url\|hash> <value> \[name\]"/);
});

t.test('suppression: one alert, then one summary when the suppression ends', async (t) => {
  const h = new Harness({ config: detectConfig('detect_rule auth-brute-force suppress 2m') });
  for (let i = 0; i < 35; i++) refused(h, T0 + i * S, '10.0.0.7', 'alice');
  t.equal(h.raised('auth-brute-force').length, 1, '3 thresholds crossed, 1 alert');
  h.send('client-connected', T0 + 3 * MIN, { clientId: 'later' });
  const summaries = h.alerts.filter((a) => a.event.action === 'alert-summary');
  t.equal(summaries.length, 1);
  t.equal(summaries[0].mqprobe.detect.suppressed, 2);
  t.equal(summaries[0]['@timestamp'], new Date(T0 + 9 * S + 2 * MIN).toISOString(), 'timed at the end of the suppression');
  for (let i = 0; i < 10; i++) refused(h, T0 + 4 * MIN + i * S, '10.0.0.7', 'alice');
  t.equal(h.raised('auth-brute-force').length, 2, 'after the suppression the next threshold alerts again');
});

t.test('event time: the same events give the same alerts, at any speed', async (t) => {
  const run = () => {
    const h = new Harness();
    for (let i = 0; i < 25; i++) refused(h, T0 + i * 300, '10.0.0.7', `u${i % 6}`);
    for (let i = 0; i < 300; i++) h.send('publish-received', T0 + i * 30, { clientId: 'f', topic: 't', size: 5 });
    h.flush();
    return JSON.stringify(h.alerts);
  };
  const a = run();
  t.ok(a.length > 100);
  t.equal(run(), a);
});

t.test('configuration: unknown rules and parameters, bad values and off', async (t) => {
  t.throws(
    () => new Harness({ config: detectConfig('detect_rule brute-force off') }),
    /mqprobe\.conf:2: detect_rule: unknown rule "brute-force"; the rules are auth-brute-force/,
  );
  t.throws(
    () => new Harness({ config: detectConfig('detect_rule auth-brute-force treshold 5') }),
    /mqprobe\.conf:2: detect_rule: rule auth-brute-force has no parameter "treshold"/,
  );
  t.throws(
    () => new Harness({ config: detectConfig('\ndetect_rule auth-brute-force window soon') }),
    /mqprobe\.conf:3: detect_rule auth-brute-force window: expected a duration/,
  );
  t.throws(
    () => new Harness({ config: detectConfig('detect_rule publish-rate alpha 2') }),
    /detect_rule publish-rate alpha: expected a number in 0\.0001\.\.1/,
  );
  t.throws(() => detectConfig('detect_rule auth-brute-force'), /detect_rule: expected 2 to 3 values/);
  const off = new Harness({ config: detectConfig('detect_rule auth-brute-force off\ndetect_rule auth-brute-force threshold 3') });
  t.notOk(
    off.engine.rules.some((r) => r.spec.name === 'auth-brute-force'),
    'off',
  );
  for (let i = 0; i < 20; i++) refused(off, T0 + i, '10.0.0.7', 'alice');
  t.equal(off.raised('auth-brute-force').length, 0);
  const low = new Harness({ config: detectConfig('detect_rule auth-brute-force threshold 3\ndetect_rule auth-brute-force risk_score 90') });
  for (let i = 0; i < 3; i++) refused(low, T0 + i, '10.0.0.7', 'alice');
  t.equal(low.raised('auth-brute-force')[0]?.event.risk_score, 90, 'threshold and risk_score set');
  t.equal(new Set(RULE_SPECS.map((s) => s.name)).size, RULE_SPECS.length, 'rule names are unique');
});

t.test('hostile events are skipped and cost nothing else', async (t) => {
  const h = new Harness();
  const junk: unknown[] = [
    null,
    42,
    'text',
    [],
    {},
    { event: {} },
    { '@timestamp': 'yesterday', event: { action: 'client-connected' } },
    { '@timestamp': '2026-03-02T10:00:00Z', event: { action: 'client-connected', sequence: 'x' }, mqtt: { client_id: 7 }, source: 'nope' },
    { '@timestamp': '2026-03-02T10:00:00Z', event: { action: 'subscription-granted' }, mqtt: { client_id: 'c', subscriptions: 'all' } },
    {
      '@timestamp': '2026-03-02T10:00:00Z',
      event: { action: 'subscription-granted' },
      mqtt: { client_id: 'c', subscriptions: [null, 5, { topic: 9 }, { topic: '#', granted_qos: 'x' }] },
    },
    {
      '@timestamp': '2026-03-02T10:00:00Z',
      event: { action: 'publish-received' },
      mqtt: { client_id: 'c', topic: 'beats/zeek/x', payload: '{"query":' + '"a'.repeat(100000) },
    },
    { '@timestamp': '2026-03-02T10:00:00Z', event: { action: 'connection-refused', reason: { a: 1 } }, source: { ip: 'x'.repeat(1e6) } },
    { '@timestamp': '2026-03-02T10:00:00Z', 'event.action': 'client-connected', 'mqtt.client_id': 'flat', 'source.ip': '10.9.9.9' },
  ];
  for (const j of junk) h.alerts.push(...h.engine.process(j));
  t.equal(h.engine.stats.invalid, 7, 'events without an object, an action or a time are counted as invalid');
  t.same(
    h.raised().map((a) => a.mqtt?.client_id),
    ['c'],
    'the one valid # subscription among the junk alerts',
  );
});
