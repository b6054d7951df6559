/**
 * `mqprobe setup elastic` and the Elasticsearch capture sink against a real Elasticsearch 8.19
 * (the integ-test zip from Maven Central, security on with a file-realm user).
 *
 * What this minimal build proves and what it cannot (see docs/elastic.md, "What is tested where"):
 * proven here: composable index/component templates, data stream creation from the template,
 * field types of every contract field, basic auth and its errors, per-document bulk failures,
 * outage and resend without loss or duplicates, Kibana/ML asset fields against the real mapping,
 * the ML license check (basic license: skipped, said plainly).
 * Not in this build (so skipped by setup, and proven on OpenSearch where possible): ingest
 * processors, ILM, the stack's logs@* / ecs@* templates, ML itself, API keys (need the security index).
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import http from 'node:http';
import { Writable } from 'node:stream';
import pino from 'pino';
import { startSearchPeer } from '../helpers/elasticsearch.js';
import { tempDir } from '../helpers/tmp.js';
import { sampleEvents, publishEvents } from './events.js';
import { elasticSetupCommand, runElasticSetup, type ElasticSetupOptions } from '../../elastic/setup-command.js';
import { ElasticError } from '../../elastic/connection.js';
import { SearchSink, SinkUnavailableError } from '../../capture/sinks/elasticsearch.js';
import { dataStreamName } from '../../elastic/assets.js';
import { checkSavedObjects, fieldsOfMapping, mlJobFields, simulatedMapping } from './assets-check.js';

const es = await startSearchPeer(t, 'elasticsearch', { security: true });
const dir = tempDir('mqprobe-es-test-');
const passwordFile = join(dir, 'password');
writeFileSync(passwordFile, `${es.auth!.password}\n`);
const authHeader = `Basic ${Buffer.from(`${es.auth!.username}:${es.auth!.password}`).toString('base64')}`;
const base: ElasticSetupOptions = { es: es.url, namespace: 'default', ilmDeleteAfter: '30d', user: es.auth!.username, passwordFile };

async function api<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${es.url}${path}`, {
    method,
    headers: { authorization: authHeader, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await res.json()) as T;
}

/** A pino logger whose lines the test can read (to prove no secret reaches a log line). */
function memoryLogger(): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream).child({ name: 'capture.elasticsearch' }), lines };
}

function sink(log: pino.Logger, overrides: Partial<{ namespace: string; passwordFile: string }> = {}): SearchSink {
  return new SearchSink({
    kind: 'elasticsearch',
    url: new URL(es.url),
    elastic: {
      namespace: overrides.namespace ?? 'default',
      username: es.auth!.username,
      passwordFile: overrides.passwordFile ?? passwordFile,
    },
    log,
    refresh: true,
    retryWaitMs: 100,
  });
}

t.test('setup installs everything it can and a second run changes nothing', async (t) => {
  const out: string[] = [];
  const first = await runElasticSetup(base, { out: (l) => out.push(l) });
  t.match(out[0], /^Elasticsearch 8\.\d+\.\d+ at http:\/\/127\.0\.0\.1:\d+$/);
  const byWhat = (what: RegExp) => first.find((r) => what.test(r.what));
  t.equal(byWhat(/^index template logs-mqtt\.capture/)?.outcome, 'created');
  t.equal(byWhat(/@mappings$/)?.outcome, 'created');
  t.equal(byWhat(/@settings$/)?.outcome, 'created');
  t.equal(byWhat(/@stack-fallback$/)?.outcome, 'created', 'this build has no logs@mappings/ecs@mappings: the fallback is used');
  t.equal(byWhat(/@custom/)?.outcome, 'created');
  t.equal(byWhat(/^ILM policy/)?.outcome, 'skipped');
  t.equal(byWhat(/^ingest pipeline/)?.outcome, 'skipped');
  const ml = first.filter((r) => r.what.startsWith('ML job'));
  t.equal(ml.length, 4);
  t.ok(
    ml.every((r) => r.outcome === 'skipped' && /license is "basic"/.test(r.detail ?? '')),
    'ML is skipped with the license named',
  );

  const template = await api<{
    index_templates: { index_template: { priority: number; composed_of: string[]; data_stream?: unknown; template?: unknown } }[];
  }>('GET', '/_index_template/logs-mqtt.capture');
  const it = template.index_templates[0].index_template;
  t.ok(it.priority > 100, 'priority above the built-in logs template');
  t.same(it.composed_of, [
    'logs-mqtt.capture@stack-fallback',
    'logs-mqtt.capture@mappings',
    'logs-mqtt.capture@settings',
    'logs-mqtt.capture@custom',
  ]);
  t.ok(it.data_stream, 'a data stream template');

  // The user's component survives a rerun untouched.
  await api('PUT', '/_component_template/logs-mqtt.capture@custom', { template: { settings: { index: { refresh_interval: '7s' } } } });

  const again: string[] = [];
  const second = await runElasticSetup(base, { out: (l) => again.push(l) });
  t.same(
    second.filter((r) => r.outcome !== 'skipped').map((r) => r.outcome),
    second.filter((r) => r.outcome !== 'skipped').map(() => 'unchanged'),
    'nothing changed',
  );
  t.match(again.at(-1), /0 created, 0 updated, 5 unchanged, 6 skipped/);
  const custom = await api<{
    component_templates: { component_template: { template: { settings?: { index?: { refresh_interval?: string } } } } }[];
  }>('GET', '/_component_template/logs-mqtt.capture@custom');
  t.equal(custom.component_templates[0].component_template.template.settings?.index?.refresh_interval, '7s', 'custom component kept');
});

t.test('capture events land in the data stream with the right field types', async (t) => {
  const { log, lines } = memoryLogger();
  const s = sink(log);
  t.teardown(() => s.close());
  const events = sampleEvents();
  await s.write(events.map((e) => JSON.stringify(e)));
  t.equal(s.stats().delivered, events.length);

  const ds = dataStreamName('default');
  const found = await api<{ hits: { hits: { _id: string; _index: string; _source: Record<string, unknown> }[] } }>(
    'POST',
    `/${ds}/_search`,
    {
      size: 100,
      query: { terms: { 'event.id': events.map((e) => (e.event as { id: string }).id) } },
    },
  );
  t.equal(found.hits.hits.length, events.length, 'a search finds each event');
  for (const h of found.hits.hits) {
    t.match(h._index, /^\.ds-logs-mqtt\.capture-default-/, 'stored in the data stream');
    t.equal(h._id, (h._source.event as { id: string }).id, '_id is event.id');
    t.same(h._source.data_stream, { type: 'logs', dataset: 'mqtt.capture', namespace: 'default' });
  }
  // Typed queries only match when the mapping types are right.
  const typed = async (query: unknown) =>
    (await api<{ hits: { total: { value: number } } }>('POST', `/${ds}/_search`, { query })).hits.total.value;
  t.equal(await typed({ term: { 'source.ip': '192.0.2.0/24' } }), events.length - 1, 'source.ip is an ip (CIDR query)');
  t.equal(await typed({ term: { 'source.ip': '2001:db8::/32' } }), 1, 'IPv6 source.ip');
  t.equal(await typed({ range: { 'mqtt.qos': { gte: 1 } } }), 1, 'mqtt.qos is numeric');
  t.equal(await typed({ term: { 'mqtt.retain': false } }), 1, 'mqtt.retain is boolean');
  t.equal(await typed({ term: { 'mqtt.topic': 'plant/line1/temp' } }), 1, 'mqtt.topic is a keyword');
  t.equal(await typed({ term: { 'mqtt.subscriptions.granted_qos': 128 } }), 1, 'granted_qos holds 128 (failure)');
  // MQTT 5 fields
  t.equal(await typed({ term: { 'mqtt.server_reason_code': 0x8e } }), 1, 'server_reason_code is numeric (0x8E takeover)');
  t.equal(await typed({ range: { 'mqtt.session_expiry_interval': { gte: 3600 } } }), 1, 'session_expiry_interval is numeric');
  t.equal(await typed({ term: { 'mqtt.subscriptions.no_local': true } }), 1, 'subscriptions.no_local is boolean');
  t.equal(
    await typed({ term: { 'mqtt.subscriptions.subscription_identifier': 268435455 } }),
    1,
    'a subscription identifier of 2^28 - 1 fits',
  );
  t.equal(await typed({ term: { 'mqtt.user_property_names': 'token' } }), 1, 'user_property_names is a keyword array');
  t.equal(await typed({ term: { 'mqtt.shared_group': 'workers' } }), 1, 'shared_group is a keyword');
  t.equal(await typed({ range: { 'mqtt.correlation_data_size': { gt: 0 } } }), 1, 'correlation_data_size is numeric');

  const mapping = await api<Record<string, { mappings: Record<string, unknown> }>>('GET', `/${ds}/_mapping`);
  const types = fieldsOfMapping(Object.values(mapping)[0].mappings);
  const expected: Record<string, string> = {
    '@timestamp': 'date',
    'event.sequence': 'long',
    'event.action': 'keyword',
    'source.ip': 'ip',
    'source.port': 'long',
    'user.name': 'keyword',
    'tls.established': 'boolean',
    'mqtt.client_id': 'keyword',
    'mqtt.topic': 'keyword',
    'mqtt.qos': 'byte',
    'mqtt.retain': 'boolean',
    'mqtt.dup': 'boolean',
    'mqtt.clean_session': 'boolean',
    'mqtt.protocol_version': 'byte',
    'mqtt.keepalive': 'integer',
    'mqtt.message_id': 'integer',
    'mqtt.payload_size': 'long',
    'mqtt.payload': 'keyword',
    'mqtt.reason_code': 'short',
    'mqtt.subscriptions.topic': 'keyword',
    'mqtt.subscriptions.granted_qos': 'short',
    'mqtt.will.topic': 'keyword',
    'mqtt.will.retain': 'boolean',
    'mqtt.server_reason_code': 'short',
    'mqtt.session_expiry_interval': 'long',
    'mqtt.receive_maximum': 'long',
    'mqtt.maximum_packet_size': 'long',
    'mqtt.topic_alias_maximum': 'long',
    'mqtt.authentication_method': 'keyword',
    'mqtt.user_property_names': 'keyword',
    'mqtt.user_properties.name': 'keyword',
    'mqtt.user_properties.value': 'keyword',
    'mqtt.topic_alias': 'long',
    'mqtt.content_type': 'keyword',
    'mqtt.payload_format_indicator': 'byte',
    'mqtt.response_topic': 'keyword',
    'mqtt.correlation_data_size': 'long',
    'mqtt.message_expiry_interval': 'long',
    'mqtt.shared_group': 'keyword',
    'mqtt.subscription_identifier': 'long',
    'mqtt.subscriptions.no_local': 'boolean',
    'mqtt.subscriptions.retain_as_published': 'boolean',
    'mqtt.subscriptions.retain_handling': 'byte',
    'mqtt.subscriptions.subscription_identifier': 'long',
    'mqtt.subscriptions.shared_group': 'keyword',
    'mqprobe.capture.dropped': 'long',
    'data_stream.dataset': 'keyword',
  };
  for (const [field, type] of Object.entries(expected)) t.equal(types.get(field), type, `${field} is ${type}`);
  // Every leaf of every sample event has an explicit mapping (nothing left to dynamic guessing).
  const leaves = new Set<string>();
  const walk = (o: unknown, prefix: string) => {
    if (Array.isArray(o)) return o.forEach((x) => walk(x, prefix));
    if (o && typeof o === 'object') return Object.entries(o).forEach(([k, v]) => walk(v, prefix ? `${prefix}.${k}` : k));
    leaves.add(prefix);
  };
  events.forEach((e) => walk(e, ''));
  const template = fieldsOfMapping((await simulatedMapping(api, 'logs-mqtt.capture-probe')).mappings);
  for (const f of leaves) t.ok(template.has(f), `${f} is mapped by the template`);
  t.notOk(lines.join('').includes(es.auth!.password), 'the password is in no log line');
});

t.test('a rejected document is counted and kept, the rest of the batch is stored', async (t) => {
  const { log, lines } = memoryLogger();
  const s = sink(log);
  t.teardown(() => s.close());
  const [good1, good2] = sampleEvents();
  const bad: Record<string, unknown> = {
    ...sampleEvents()[2],
    mqtt: { client_id: 'bad', topic: { nested: 'object where a keyword belongs' } },
  };
  const badId = (bad.event as { id: string }).id;
  await s.write([JSON.stringify(good1), JSON.stringify(bad), 'not json at all', JSON.stringify(good2)]);
  const st = s.stats();
  t.equal(st.delivered, 2, 'the good events are stored');
  t.equal(st.rejected, 2, 'the mapping conflict and the non-JSON line are counted');
  t.equal(st.lost, 0);
  const kept = await api<{
    hits: { hits: { _id: string; _source: { event: { kind: string; original: string }; error: { type: string; message: string } } }[] };
  }>('POST', `/${dataStreamName('default')}/_search`, { size: 10, query: { term: { 'event.kind': 'pipeline_error' } } });
  const mine = kept.hits.hits.find((h) => h._id === badId);
  t.ok(mine, 'the refused event is kept under its own id');
  t.same(
    JSON.parse(mine!._source.event.original).mqtt.topic,
    { nested: 'object where a keyword belongs' },
    'with the raw event in event.original',
  );
  t.match(mine!._source.error.type, /parsing_exception/);
  t.ok(
    kept.hits.hits.some((h) => h._source.event.original === 'not json at all'),
    'the non-JSON line is kept too',
  );
  t.ok(lines.some((l) => /refused a capture event/.test(l)));
});

t.test('Elasticsearch going away and coming back loses nothing and stores nothing twice', async (t) => {
  const { log } = memoryLogger();
  const s = sink(log, { namespace: 'outage' });
  t.teardown(() => s.close());
  const a = publishEvents(300, 'before');
  const b = publishEvents(300, 'during');
  await s.write(a);
  await es.stop();
  const err = await s.write(b).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof SinkUnavailableError, 'write rejects while Elasticsearch is down');
  t.match((err as Error).message, /cannot reach http:\/\/127\.0\.0\.1:\d+: connection refused/);
  await es.start();
  await s.write(b); // the caller offers the kept batch again
  await s.write(a.slice(0, 100)); // and a batch whose answer was lost is harmless
  const st = s.stats();
  t.equal(st.delivered, 600);
  t.equal(st.duplicates, 100);
  t.equal(st.failedWrites, 1);
  const count = await api<{ count: number }>('GET', `/${dataStreamName('outage')}/_count`);
  t.equal(count.count, 600, 'every event exactly once');
});

t.test('Kibana saved objects and ML jobs only use fields the template maps', async (t) => {
  const fields = fieldsOfMapping((await simulatedMapping(api, 'logs-mqtt.capture-probe')).mappings);
  const problems = checkSavedObjects(fields);
  t.same(problems, [], 'ndjson: every line parses, every reference resolves, every field exists');
  for (const [job, used] of mlJobFields()) {
    for (const f of used) t.ok(fields.has(f), `${job}: ${f} is mapped`);
  }
});

t.test('clear errors: bad credentials, wrong URLs, bad options', async (t) => {
  const wrong = join(dir, 'wrong-password');
  writeFileSync(wrong, 'not-the-password');
  const fail = (o: Partial<ElasticSetupOptions>) =>
    runElasticSetup({ ...base, ...o }, { out: () => {} }).then(
      () => '',
      (e: unknown) => (e instanceof ElasticError ? e.message : `not an ElasticError: ${e}`),
    );
  t.match(await fail({ passwordFile: wrong }), /rejected the credentials \(HTTP 401\)$/);
  t.match(
    await fail({ user: undefined, passwordFile: undefined }),
    /rejected the credentials \(HTTP 401\): it needs a user and password file or an API key file/,
  );
  t.match(await fail({ passwordFile: join(dir, 'missing') }), /cannot read the password file .*missing: ENOENT/);
  t.match(await fail({ es: es.url.replace('http:', 'https:') }), /does not speak TLS \(use http:\/\/ instead of https:\/\/\)/);
  t.match(await fail({ es: 'ftp://127.0.0.1:9200' }), /--es: expected an http:\/\/ or https:\/\/ URL/);
  t.match(await fail({ es: 'not a url' }), /--es: expected an http/);
  t.match(await fail({ es: `http://user:pw@127.0.0.1:1/` }), /not in the URL/);
  t.match(await fail({ namespace: 'Bad-NS' }), /--namespace: expected lowercase/);
  t.match(await fail({ ilmDeleteAfter: 'forever' }), /--ilm-delete-after: expected a duration/);
  t.match(await fail({ apiKeyFile: passwordFile }), /either an API key file or a user/);

  // Something that is not Elasticsearch on the port, and nothing at all on another.
  const other = http.createServer((_req, res) => res.end('<html>hello</html>'));
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  t.teardown(() => other.close());
  const port = (other.address() as { port: number }).port;
  t.match(
    await fail({ es: `http://127.0.0.1:${port}`, user: undefined, passwordFile: undefined }),
    /is not Elasticsearch or OpenSearch: HTTP 200 without a product version/,
  );
  await new Promise<void>((r) => other.close(() => r()));
  t.match(await fail({ es: `http://127.0.0.1:${port}` }), /connection refused \(nothing listens there\)/);

  // Through the command: one line on stderr, exit code 1, and no password anywhere.
  const errs: string[] = [];
  const cmd = elasticSetupCommand({ out: () => {} })
    .exitOverride()
    .configureOutput({ writeErr: (s) => void errs.push(s), writeOut: () => {} });
  const thrown = await cmd.parseAsync(['--es', es.url, '--user', es.auth!.username, '--password-file', wrong], { from: 'user' }).then(
    () => undefined,
    (e: unknown) => e as { exitCode?: number },
  );
  t.equal(thrown?.exitCode, 1, 'exit code 1');
  t.equal(errs.length, 1);
  t.match(errs[0], /^mqprobe setup elastic: http:\/\/127\.0\.0\.1:\d+ rejected the credentials \(HTTP 401\)\n$/);
  t.notOk(errs.join('').includes('not-the-password'));
});
