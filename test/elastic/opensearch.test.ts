/**
 * What the minimal Elasticsearch build cannot show, proven on a real OpenSearch 2.19 (integ-test
 * zip plus its ingest-common and lang-mustache modules, all from Maven Central):
 * - the ingest pipeline really runs (event.ingested is stamped on every stored event);
 * - setup composes the index template with `logs@mappings`/`logs@settings`/`ecs@mappings` when they
 *   exist (here: stand-ins shaped like the stack's, since OpenSearch has none), drops the fallback,
 *   keeps our explicit mappings above the stack's dynamic templates, and rolls an existing data stream
 *   over to the new template;
 * - the `capture_sink opensearch` path through the OpenSearch client's bulk helper.
 */
import t from 'tap';
import pino from 'pino';
import { startSearchPeer } from '../helpers/elasticsearch.js';
import { sampleEvents } from './events.js';
import { runElasticSetup, type ElasticSetupOptions } from '../../elastic/setup-command.js';
import { SearchSink } from '../../capture/sinks/elasticsearch.js';
import { connect } from '../../elastic/connection.js';
import { dataStreamName } from '../../elastic/assets.js';
import { fieldsOfMapping, simulatedMapping } from './assets-check.js';

const os = await startSearchPeer(t, 'opensearch');
const base: ElasticSetupOptions = { es: os.url, namespace: 'default', ilmDeleteAfter: '30d' };

async function api<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${os.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await res.json()) as T;
}

function sink(namespace = 'default'): SearchSink {
  return new SearchSink({
    kind: 'opensearch',
    url: new URL(os.url),
    elastic: { namespace },
    log: pino({ level: 'silent' }),
    refresh: true,
    retryWaitMs: 100,
  });
}

t.test('setup on OpenSearch: pipeline installed and running, ILM and ML skipped plainly, rerun unchanged', async (t) => {
  const out: string[] = [];
  const first = await runElasticSetup(base, { out: (l) => out.push(l) });
  t.match(out[0], /^OpenSearch 2\.\d+\.\d+ at /);
  t.equal(first.find((r) => r.what.startsWith('ingest pipeline'))?.outcome, 'created');
  t.match(first.find((r) => r.what.startsWith('ILM policy'))?.detail, /OpenSearch has no ILM/);
  t.ok(
    first
      .filter((r) => r.what.startsWith('ML job'))
      .every((r) => r.outcome === 'skipped' && /OpenSearch has no Elastic machine learning/.test(r.detail ?? '')),
  );
  const second = await runElasticSetup(base, { out: () => {} });
  t.same(
    second.filter((r) => r.outcome !== 'skipped' && r.outcome !== 'unchanged'),
    [],
    'second run changes nothing',
  );

  const s = sink();
  t.teardown(() => s.close());
  const events = sampleEvents();
  await s.write(events.map((e) => JSON.stringify(e)));
  t.equal(s.stats().delivered, events.length);
  const found = await api<{ hits: { hits: { _source: { event: { ingested?: string; id: string } } }[] } }>(
    'POST',
    `/${dataStreamName('default')}/_search`,
    { size: 50 },
  );
  t.equal(found.hits.hits.length, events.length);
  for (const h of found.hits.hits)
    t.ok(
      h._source.event.ingested && !Number.isNaN(Date.parse(h._source.event.ingested)),
      `event.ingested stamped on ${h._source.event.id}`,
    );
  const mapping = await api<Record<string, { mappings: Record<string, unknown> }>>('GET', `/${dataStreamName('default')}/_mapping`);
  const types = fieldsOfMapping(Object.values(mapping)[0].mappings);
  t.equal(types.get('event.ingested'), 'date');
  t.equal(types.get('mqtt.qos'), 'byte');
  t.equal(types.get('source.ip'), 'ip');
  t.equal(types.get('mqtt.server_reason_code'), 'short', 'MQTT 5: the broker DISCONNECT reason code');
  t.equal(types.get('mqtt.subscriptions.no_local'), 'boolean', 'MQTT 5: subscription options');
  t.equal(types.get('mqtt.user_property_names'), 'keyword', 'MQTT 5: user property names');
  t.equal(types.get('mqtt.correlation_data_size'), 'long', 'MQTT 5: correlation data size');

  // The Elastic client refuses OpenSearch; a sink configured as elasticsearch says what to write instead.
  const wrong = await connect({ url: new URL(os.url), expect: 'elasticsearch' }).then(
    () => '',
    (e: Error) => e.message,
  );
  t.match(wrong, /is opensearch 2\.\d+\.\d+, not elasticsearch: use capture_sink opensearch/);
});

t.test('with the stack templates present, setup composes them, drops the fallback and rolls the data stream over', async (t) => {
  // Stand-ins shaped like Elasticsearch's logs@mappings, logs@settings and ecs@mappings (data_stream.*
  // fields, settings, and the ECS dynamic templates that would map *.message_id as wildcard).
  const put = async (name: string, body: unknown) =>
    t.same(await api('PUT', `/_component_template/${name}`, body), { acknowledged: true }, `stand-in ${name} installed`);
  await put('logs@mappings', {
    template: {
      mappings: {
        date_detection: false,
        properties: {
          '@timestamp': { type: 'date' },
          data_stream: { properties: { type: { type: 'keyword' }, dataset: { type: 'keyword' }, namespace: { type: 'keyword' } } },
        },
      },
    },
  });
  await put('logs@settings', { template: { settings: { index: { codec: 'best_compression' } } } });
  await put('ecs@mappings', {
    template: {
      mappings: {
        dynamic_templates: [
          { ecs_wildcard: { path_match: '*.message_id', match_mapping_type: 'string', mapping: { type: 'wildcard' } } },
          { all_strings_to_keywords: { match_mapping_type: 'string', mapping: { type: 'keyword', ignore_above: 1024 } } },
        ],
      },
    },
  });
  const results = await runElasticSetup(base, { out: () => {} });
  const template = results.find((r) => r.what.startsWith('index template'));
  t.equal(template?.outcome, 'updated');
  t.match(template?.what, /logs@mappings, logs@settings, ecs@mappings/);
  t.match(results.find((r) => r.what.startsWith('data stream'))?.detail, /mappings of the write index updated|rolled over/);
  const it = await api<{ index_templates: { index_template: { composed_of: string[] } }[] }>('GET', '/_index_template/logs-mqtt.capture');
  t.same(it.index_templates[0].index_template.composed_of, [
    'logs@mappings',
    'logs@settings',
    'ecs@mappings',
    'logs-mqtt.capture@mappings',
    'logs-mqtt.capture@settings',
    'logs-mqtt.capture@custom',
  ]);
  const sim = await simulatedMapping(api, 'logs-mqtt.capture-probe');
  const fields = fieldsOfMapping(sim.mappings);
  t.equal(fields.get('mqtt.message_id'), 'integer', 'our explicit mapping wins over the ECS dynamic template');
  t.equal(
    (sim.settings as { index: { codec?: string; default_pipeline?: string } }).index.codec,
    'best_compression',
    "the stack's settings apply",
  );
  t.equal(
    (sim.settings as { index: { default_pipeline?: string } }).index.default_pipeline,
    'logs-mqtt.capture',
    'our pipeline overrides the stack default',
  );
});
