import t from 'tap';
import { readFileSync } from 'node:fs';
import { fixture } from '../helpers/paths.js';
import { extractValues, parsePattern, MAX_PATTERN_LENGTH } from '../../bridges/opencti/pattern.js';
import { SseParser, type SseMessage } from '../../bridges/opencti/sse-parser.js';
import { IndicatorSet, derive, trackedOf } from '../../bridges/opencti/indicators.js';
import { applyPatch } from '../../bridges/opencti/patch.js';
import { stixToNgsi } from '../../bridges/opencti/stix-ngsi.js';
import { describeMatch, isIndicatorLookup } from '../../detect/indicators.js';

const values = (p: string) => {
  const r = extractValues(parsePattern(p));
  return r.ok ? r.values.map((v) => `${v.kind} ${v.value}`) : `unsupported: ${r.reason}`;
};

t.test('STIX patterns: the grammar, and what the set can match', async (t) => {
  t.same(values("[ipv4-addr:value = '10.0.0.0']"), ['ip 10.0.0.0']);
  t.same(values("[file:hashes.'SHA-256' = 'ef53']"), ['hash ef53'], 'quoted hash names');
  t.same(values("[file:hashes.MD5 = 'aa' OR file:hashes.'SHA-1' = 'bb']"), ['hash aa', 'hash bb']);
  t.same(
    values("[domain-name:value = 'a.example'] OR [url:value = 'http://b.example/x?y=\\'z\\'']"),
    ['domain a.example', "url http://b.example/x?y='z'"],
    'observations joined by OR, escaped quotes',
  );
  t.same(values("[ipv4-addr:value IN ('1.1.1.1', '2.2.2.2')]"), ['ip 1.1.1.1', 'ip 2.2.2.2']);
  t.same(values("[ipv4-addr:value ISSUBSET '198.51.100.0/24']"), ['ip 198.51.100.0/24']);
  t.same(values("([ipv6-addr:value = '2001:db8::1'])"), ['ip 2001:db8::1'], 'parenthesised observation');
  t.same(
    values("[(ipv4-addr:value = '1.1.1.1' OR ipv4-addr:value = '1.1.1.2') AND ipv4-addr:value != '0.0.0.0']"),
    'unsupported: operator != on ipv4-addr:value',
  );
  t.same(values("[ipv4-addr:value = '1.1.1.1' AND domain-name:value = 'x.example']"), 'unsupported: AND across different kinds of values');
  t.same(values("[ipv4-addr:value = '1.1.1.1'] AND [domain-name:value = 'x.example']"), 'unsupported: observations joined by AND');
  t.same(
    values("[ipv4-addr:value = '1.1.1.1'] FOLLOWEDBY [ipv4-addr:value = '1.1.1.2']"),
    'unsupported: observations joined by FOLLOWEDBY',
  );
  t.same(values("[ipv4-addr:value = '1.1.1.1'] REPEATS 5 TIMES WITHIN 10 SECONDS"), 'unsupported: qualifier REPEATS');
  t.same(
    values("[x509-certificate:issuer = 'CN=WEBMAIL' AND x509-certificate:serial_number = '4c:0b']"),
    'unsupported: object path x509-certificate:issuer',
  );
  t.same(values("[network-traffic:dst_ref.value = '1.1.1.1']"), 'unsupported: object path network-traffic:dst_ref.value');
  t.same(values("[ipv4-addr:value NOT = '1.1.1.1']"), 'unsupported: NOT =');
  t.same(
    values("[file:name MATCHES '^x' AND file:extensions.'windows-pebinary-ext'.sections[*].entropy > 7.0]"),
    'unsupported: object path file:name',
  );
  t.same(
    values("[ipv4-addr:value = '1.1.1.1'] START t'2016-06-01T00:00:00Z' STOP t'2016-07-01T00:00:00Z'"),
    'unsupported: qualifier START',
  );
  for (const bad of [
    "[ipv4-addr:value = '1.1.1.1'",
    "ipv4-addr:value = '1.1.1.1'",
    "[ipv4-addr:value = '1.1.1.1]",
    "[ipv4-addr:value '1.1.1.1']",
    "[ipv4-addr:value = '1.1.1.1'] OR",
    "[ipv4-addr = '1']",
    "[ipv4-addr:value = 'a\\x']",
    '[ipv4-addr:value = @]',
    '',
    `[${'('.repeat(100)}`,
    `${'('.repeat(30000)}[ipv4-addr:value = '1.1.1.1']${')'.repeat(30000)}`,
  ]) {
    t.throws(() => parsePattern(bad), { name: 'PatternError' }, `invalid: ${bad.slice(0, 60)}`);
  }
  t.throws(() => parsePattern(`[url:value = '${'a'.repeat(MAX_PATTERN_LENGTH)}']`), /longer than/, 'an oversized pattern');
  t.throws(
    () => parsePattern("[ipv4-addr:value = '1.1.1.1' AND]"),
    /expected an object type such as ipv4-addr, found "\]" at offset 32/,
    'errors say where',
  );
});

t.test('every indicator pattern of the STIX fixtures parses', async (t) => {
  const patterns: string[] = [];
  for (const f of [
    'apt1.json',
    'indicator-for-c2-ip-address.json',
    'malware-indicator-for-file-hash.json',
    'sighting-of-an-indicator.json',
    'using-marking-definitions.json',
  ]) {
    const b = JSON.parse(readFileSync(fixture('stix', f), 'utf8'));
    for (const o of b.type === 'bundle' ? b.objects : [b]) if (o.type === 'indicator') patterns.push(o.pattern);
  }
  t.equal(patterns.length, 16);
  for (const p of patterns) t.doesNotThrow(() => parsePattern(p), p);
});

t.test('SSE parser: the event-stream rules, across any chunking', async (t) => {
  const stream =
    ': comment\r\nid: 1-0\r\nevent: create\r\ndata: {"a":\r\ndata:1}\r\n\r\nretry: 500\nevent: heartbeat\ndata\n\nid: 2-0\revent: update\rdata: x\r\rnot-a-field\nid: bad\u0000id\ndata: y\n\n';
  const expected = [
    { id: '1-0', event: 'create', data: '{"a":\n1}' },
    { id: '1-0', event: 'heartbeat', data: '' },
    { id: '2-0', event: 'update', data: 'x' },
    { id: '2-0', event: 'message', data: 'y' },
  ];
  for (const size of [1, 2, 3, 7, stream.length]) {
    const got: SseMessage[] = [];
    const retries: number[] = [];
    const p = new SseParser(1024, {
      onEvent: (m) => got.push(m),
      onOversized: () => t.fail('nothing is oversized'),
      onRetry: (ms) => retries.push(ms),
    });
    for (let i = 0; i < stream.length; i += size) p.push(stream.slice(i, i + size));
    t.same(got, expected, `chunks of ${size}`);
    t.same(retries, [500]);
  }
  const got: SseMessage[] = [];
  const over: [number, string | undefined][] = [];
  const p = new SseParser(100, { onEvent: (m) => got.push(m), onOversized: (n, id) => over.push([n, id]) });
  p.push(`id: 3-0\ndata: ${'z'.repeat(60)}\n`);
  for (let i = 0; i < 1000; i++) p.push('z'.repeat(1000));
  p.push('\nid: 4-0\n\nid: 5-0\ndata: ok\n\n');
  t.same(got, [{ id: '5-0', event: 'message', data: 'ok' }], 'the event after the oversized one arrives');
  t.equal(over.length, 1);
  t.equal(over[0][1], '4-0', 'the oversized event tells its id, even one given after the data');
  p.push('data: half an event');
  p.reset();
  p.push('\n\n');
  t.equal(got.length, 1, 'an event cut by the end of the stream is dropped');
});

t.test("indicator set: lookups, updates, the detectors' interface", async (t) => {
  const set = new IndicatorSet();
  t.ok(isIndicatorLookup(set), 'what detect/ looks up under opencti.indicators');
  const add = (stix: Record<string, unknown>) => {
    const d = derive(trackedOf(stix));
    if ('entry' in d) set.set(d.entry);
    return d;
  };
  add({
    id: 'indicator--a',
    type: 'indicator',
    name: 'C2',
    pattern: "[ipv4-addr:value = '198.51.100.0/24'] OR [ipv6-addr:value = '2001:db8::1']",
    extensions: { 'extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba': { score: 80 } },
  });
  add({ id: 'domain-name--b', type: 'domain-name', value: 'Evil.Example.' });
  add({ id: 'file--c', type: 'file', hashes: { MD5: '001DD76872D80801692FF942308C64E6', 'SHA-1': 'not-a-hash' } });
  t.same(add({ id: 'file--d', type: 'file', hashes: { MD5: 'zz' } }), { invalid: '"zz" is not a valid hash' });
  t.same(add({ id: 'indicator--e', type: 'indicator', pattern: "[domain-name:value = 'x.example']", pattern_type: 'sigma' }), {
    unsupported: 'pattern_type sigma',
  });
  t.same(add({ id: 'indicator--f', type: 'indicator', pattern: "[ipv4-addr:value = '1.1.1.1']", revoked: true }), { none: 'revoked' });
  t.same(set.ids(), ['domain-name--b', 'indicator--a'], 'a file with one invalid hash is left out whole');
  t.same(
    describeMatch(set.matchIp('198.51.100.77')),
    {
      name: 'C2',
      reference: 'indicator--a',
      confidence: '80',
      pattern: "[ipv4-addr:value = '198.51.100.0/24'] OR [ipv6-addr:value = '2001:db8::1']",
    },
    'what an alert says about the match',
  );
  t.ok(set.matchIp('2001:db8:0::1'), 'IPv6 in any spelling');
  t.ok(set.matchIp('::ffff:198.51.100.1'), 'IPv4-mapped IPv6');
  t.notOk(set.matchIp('198.51.101.1'));
  t.notOk(set.matchIp('not an address'));
  t.ok(set.matchDomain('evil.example'), 'domains case-insensitively, trailing dot ignored');
  t.notOk(set.matchDomain('sub.evil.example'), 'a domain-name value names one domain');
  set.remove('indicator--a');
  t.notOk(set.matchIp('198.51.100.77'), 'removed with its range');
  t.equal(set.size, 1);

  const old = trackedOf({ id: 'indicator--g', type: 'indicator', pattern: "[ipv4-addr:value = '1.1.1.1']", hashes: {} });
  t.same(
    applyPatch(
      old,
      [
        { op: 'replace', path: '/pattern', value: "[ipv4-addr:value = '2.2.2.2']" },
        { op: 'add', path: '/__proto__/x', value: 1 },
        { op: 'add', path: '/hashes/MD5', value: 'ab' },
      ],
      undefined,
    ),
    { ...old, pattern: "[ipv4-addr:value = '2.2.2.2']", hashes: { MD5: 'ab' } },
    'JSON patch on the kept fields; __proto__ paths ignored',
  );
  t.equal(({} as Record<string, unknown>).x, undefined, 'no prototype pollution');
  t.same(applyPatch(old, undefined, { replace: { revoked: { current: true, previous: false } } }).revoked, true, 'x_opencti_patch replace');
});

t.test('STIX to NGSI: entities with ref<Type> relations, hashes as attributes', async (t) => {
  const [rel] = JSON.parse(readFileSync(fixture('opencti', 'stream-event-data-relationships.json'), 'utf8'));
  const out = stixToNgsi('ngsi-ld', 'create', rel, 1699020914368) as { entities: Record<string, any>[]; relations: unknown[] };
  const e = out.entities[0];
  t.equal(e.id, 'urn:ngsi-ld:relationship--21c1841a-7b2d-40a5-9398-5fd979384467');
  t.equal(e.type, 'Relationship');
  t.same(e.refThreatActor, { type: 'Relationship', object: 'urn:ngsi-ld:threat-actor--fd6b0e6f-96e0-568d-ba24-8a140d0428cd' });
  t.same(e.refGrouping, { type: 'Relationship', object: 'urn:ngsi-ld:grouping--e09ce86e-0bd0-5a09-a5e9-4ebd76b79bd4' });
  t.same(e.relationship_type, { type: 'Property', value: 'related-to', observedAt: '2023-11-03T14:15:14.368Z' });
  t.equal(out.relations.length, 2);
  const file = stixToNgsi('ngsi', 'create', {
    id: 'file--1',
    type: 'file',
    hashes: { 'SHA-256': 'ab', MD5: 'cd' },
    created_by_ref: 'identity--b2a8fbec-b4fb-563c-a052-7b5b4ab23070',
  }) as { entities: Record<string, any>[] };
  t.same(file.entities[0].SHA_256, { type: 'String', value: 'ab', metadata: {} });
  t.same(file.entities[0].refIdentity, {
    type: 'Relationship',
    value: 'urn:ngsi-ld:identity--b2a8fbec-b4fb-563c-a052-7b5b4ab23070',
    metadata: {},
  });
});
