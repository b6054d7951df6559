/** capture_sink elasticsearch end to end: a broker session through the pipeline into a real Elasticsearch data stream. */
import t from 'tap';
import { startSearchPeer } from '../helpers/elasticsearch.js';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { runElasticSetup } from '../../elastic/setup-command.js';
import { dataStreamName } from '../../elastic/assets.js';
import { connectClient } from '../helpers/mqtt.js';
import { scriptedSession, securityConf } from './session.js';

t.test('a scripted session and an MQTT 5 client land in logs-mqtt.capture-<ns>, every sequence once, typed', async (t) => {
  const es = await startSearchPeer(t, 'elasticsearch');
  const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${es.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return (await res.json()) as T;
  };
  await runElasticSetup({ es: es.url, namespace: 'capturetest', ilmDeleteAfter: '1d' }, { out: () => {} });
  const dir = tempDir();
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\n${securityConf(dir)}capture_sink elasticsearch ${es.url}\ncapture_elasticsearch_namespace capturetest\ncapture_payload full\n`,
    { dir },
  );
  await scriptedSession(t, b.mqttUrl, b.port);
  const v5 = await connectClient(t, b.mqttUrl, {
    protocolVersion: 5,
    clientId: 'alice-5',
    username: 'alice',
    password: 'alice-secret',
    properties: { sessionExpiryInterval: 60, userProperties: { site: 'plant-1' } },
  });
  await v5.subscribeAsync('sensors/#', { qos: 1, nl: true, rh: 2, properties: { subscriptionIdentifier: 12 } });
  await v5.publishAsync('sensors/v5', 'x', {
    qos: 1,
    properties: { contentType: 'text/plain', correlationData: Buffer.alloc(8), messageExpiryInterval: 30, userProperties: { unit: 'C' } },
  });
  await v5.unsubscribeAsync('sensors/#');
  await v5.endAsync();
  await b.broker.close();
  const n = b.broker.capture.stats().recorded;
  t.equal(b.broker.capture.stats().sinks[0].delivered, n, 'the sink delivered every event');
  const index = dataStreamName('capturetest');
  await api('POST', `/${index}/_refresh`);
  const found = await api<{ hits: { hits: { _id: string; _source: Record<string, any> }[] } }>('POST', `/${index}/_search`, {
    size: 1000,
    sort: [{ 'event.sequence': 'asc' }],
    query: { term: { 'service.id': b.broker.info.id } },
  });
  const seqs = found.hits.hits.map((h) => h._source.event.sequence);
  t.same(
    seqs,
    Array.from({ length: n }, (_, i) => i + 1),
    `all ${n} events, each once`,
  );
  t.ok(
    found.hits.hits.every((h) => h._id === h._source.event.id),
    '_id is event.id (a resend stores nothing twice)',
  );
  const pub = await api<{ hits: { total: { value: number } } }>('POST', `/${index}/_search`, {
    query: {
      bool: { filter: [{ term: { 'mqtt.topic': 'sensors/t1' } }, { term: { 'mqtt.qos': 1 } }, { term: { 'source.ip': '127.0.0.0/8' } }] },
    },
  });
  t.equal(pub.hits.total.value, 1, 'a publish found by keyword topic, numeric qos and an ip range on source.ip');
  const mapping = await api<Record<string, { mappings: any }>>(
    'GET',
    `/${index}/_mapping/field/mqtt.qos,source.ip,mqtt.client_id,mqtt.retain`,
  );
  const fields = Object.values(mapping)[0].mappings;
  t.equal(fields['mqtt.qos'].mapping.qos.type, 'byte');
  t.equal(fields['source.ip'].mapping.ip.type, 'ip');
  t.equal(fields['mqtt.client_id'].mapping.client_id.type, 'keyword');
  t.equal(fields['mqtt.retain'].mapping.retain.type, 'boolean');

  // the MQTT 5 client's events, found by typed queries on its fields
  const count = async (filter: unknown[]) =>
    (await api<{ hits: { total: { value: number } } }>('POST', `/${index}/_search`, { query: { bool: { filter } } })).hits.total.value;
  t.equal(
    await count([{ term: { 'mqtt.protocol_version': 5 } }, { range: { 'mqtt.session_expiry_interval': { gte: 60 } } }]),
    1,
    'client-connected',
  );
  t.equal(
    await count([{ term: { 'mqtt.subscriptions.no_local': true } }, { term: { 'mqtt.subscription_identifier': 12 } }]),
    1,
    'subscription',
  );
  t.equal(
    await count([{ term: { 'mqtt.user_property_names': 'unit' } }, { range: { 'mqtt.correlation_data_size': { gte: 8 } } }]),
    1,
    'publish-received',
  );
  t.equal(await count([{ term: { 'mqtt.user_properties.value': 'C' } }]), 1, 'user property values under capture_payload full');
  t.equal(
    await count([
      { term: { 'mqtt.client_id': 'alice-5' } },
      { term: { 'event.action': 'unsubscribed' } },
      { term: { 'mqtt.reason_code': 0 } },
    ]),
    1,
    'unsubscribed',
  );
  const v5Fields = [
    'mqtt.session_expiry_interval',
    'mqtt.subscriptions.no_local',
    'mqtt.user_property_names',
    'mqtt.correlation_data_size',
  ];
  const m5 = Object.values(await api<Record<string, { mappings: any }>>('GET', `/${index}/_mapping/field/${v5Fields.join(',')}`))[0]
    .mappings;
  t.same(
    v5Fields.map((f) => Object.values(m5[f].mapping as Record<string, { type: string }>)[0].type),
    ['long', 'boolean', 'keyword', 'long'],
    'MQTT 5 fields typed by the template',
  );
});
