import { loadConfig } from '../../app/config.js';
import t, { type Test } from 'tap';
import https from 'node:https';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { freePort, startTestBroker, tempDir, type TestBroker } from '../helpers/broker.js';
import { collect, connectClient, until } from '../helpers/mqtt.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { fixture } from '../helpers/paths.js';
import { openSse } from './sse-client.js';
import { post as postAs, type Answer } from './osquery-agent.js';

const SECRET = 'enroll-S3CRET-7d1e0a';
const pki: TestPki = makePki();

/** osquery's TLS POST against this file's test CA. */
const post = (port: number, path: string, body: unknown, opts: { gzip?: boolean; raw?: Buffer } = {}): Promise<Answer> =>
  postAs(pki.caCert, port, path, body, opts);

async function osqueryBroker(
  t: Test,
  dir = tempDir(),
  port?: number,
  extra: string[] = [],
): Promise<{ broker: TestBroker; port: number; dir: string }> {
  const p = port ?? (await freePort());
  writeFileSync(join(dir, 'secret'), `${SECRET}\n`);
  writeFileSync(
    join(dir, 'osquery.json'),
    JSON.stringify({ options: { distributed_interval: 10 }, schedule: { processes: { query: 'select * from processes', interval: 60 } } }),
  );
  const conf = [
    'listener 0 127.0.0.1',
    'allow_anonymous true',
    'http_listener 0 127.0.0.1',
    `persistence_location ${dir}`,
    'beat osquery',
    `osquery_listener ${p} 127.0.0.1`,
    `osquery_certfile ${pki.serverCert}`,
    `osquery_keyfile ${pki.serverKey}`,
    `osquery_enroll_secret_file ${join(dir, 'secret')}`,
    `osquery_config_file ${join(dir, 'osquery.json')}`,
    `osquery_host_config_dir ${join(dir, 'hosts')}`,
    'osquery_max_body 1M',
    ...extra,
    '',
  ].join('\n');
  const broker = await startTestBroker(t, conf, { dir });
  await until(() => readFileSync(broker.logFile, 'utf8').includes('osquery TLS endpoint listening'), 15_000, 'osquery listener');
  return { broker, port: p, dir };
}

function ndjson(...path: string[]): unknown[] {
  return readFileSync(fixture(...path), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as unknown);
}

t.test(
  'replayed wire format: enroll, config, result and status logs to MQTT and SSE, distributed query from MQTT, restart keeps the node',
  async (t) => {
    const dir = tempDir();
    const { broker, port } = await osqueryBroker(t, dir);
    const sub = await connectClient(t, broker.mqttUrl);
    const out = collect(sub);
    await sub.subscribeAsync('beats/osquery/#', { qos: 1 });
    const sse = await openSse(t, broker.httpPort!, 'beats/osquery/result/#');

    const enrolled = await post(port, '/enroll', {
      enroll_secret: SECRET,
      host_identifier: 'host-a',
      host_details: { os_version: { name: 'Ubuntu' } },
    });
    t.equal(enrolled.status, 200);
    const nodeKey = enrolled.body.node_key as string;
    t.type(nodeKey, 'string');
    t.equal(enrolled.body.node_invalid, false);
    await until(() => out.some((m) => m.topic === 'beats/osquery/enrolled/host-a'), 10_000, 'enrollment record');
    t.same(
      JSON.parse(out.find((m) => m.topic === 'beats/osquery/enrolled/host-a')!.payload.toString()),
      {
        hostIdentifier: 'host-a',
        address: '127.0.0.1',
        '@timestamp': JSON.parse(out.find((m) => m.topic === 'beats/osquery/enrolled/host-a')!.payload.toString())['@timestamp'],
      },
      'the enrollment names the host and the address it enrolled from, nothing of the secret or node key',
    );

    const config = await post(port, '/v1/config', { node_key: nodeKey });
    t.equal(config.status, 200);
    t.same((config.body.schedule as Record<string, unknown>).processes, { query: 'select * from processes', interval: 60 });

    // osquery's documented result formats (event, snapshot, batch) and Fleet's result lines, as the TLS logger batches them
    const results = [...ndjson('osquery', 'osqueryd.results.docs-examples.ndjson'), ...ndjson('fleet', 'osquery_result.ndjson')];
    const logged = await post(port, '/log', { node_key: nodeKey, log_type: 'result', data: results }, { gzip: true });
    t.equal(logged.status, 200, JSON.stringify(logged.body));
    // Fleet's status lines, plus one that names no host at all
    const statuses = [...ndjson('fleet', 'osquery_status.ndjson'), { severity: '0', filename: 'tls.cpp', line: '1', message: 'no host' }];
    t.equal((await post(port, '/log', { node_key: nodeKey, log_type: 'status', data: statuses })).status, 200);

    await until(() => out.filter((m) => m.topic.startsWith('beats/osquery/status/')).length === statuses.length, 10_000, 'status messages');
    const processes = out.filter((m) => m.topic === 'beats/osquery/result/processes');
    t.ok(processes.length >= 2, 'event rows of processes');
    const added = JSON.parse(processes[0].payload.toString()) as Record<string, unknown>;
    t.equal(added.action, 'added');
    t.equal(added.hostIdentifier, 'hostname.local', 'the log line names its host');
    t.equal((added.columns as Record<string, unknown>).name, 'osqueryd');
    const status = out.filter((m) => m.topic.startsWith('beats/osquery/status/'));
    t.ok(
      status.some((m) => m.topic === 'beats/osquery/status/host-a'),
      'status without a host is attributed to the enrolled node',
    );
    await until(() => sse.events.length > 0, 10_000, 'SSE result events');

    // distributed query ordered over MQTT
    const ops = await connectClient(t, broker.mqttUrl);
    await ops.publishAsync('beats/osquery/query', JSON.stringify({ sql: 'select version from osquery_info', hosts: ['host-a'] }), {
      qos: 1,
    });
    await until(() => out.some((m) => m.topic === 'beats/osquery/query/accepted'), 10_000, 'query accepted');
    const queryId = (JSON.parse(out.find((m) => m.topic === 'beats/osquery/query/accepted')!.payload.toString()) as { id: string }).id;
    const read = await post(port, '/distributed/read', { node_key: nodeKey });
    t.same(read.body.queries, { [queryId]: 'select version from osquery_info' });
    t.same((await post(port, '/distributed/read', { node_key: nodeKey })).body.queries, {}, 'handed out once');
    const write = await post(port, '/distributed/write', {
      node_key: nodeKey,
      queries: { [queryId]: [{ version: '5.12.1' }] },
      statuses: { [queryId]: 0 },
    });
    t.equal(write.status, 200);
    await until(() => out.some((m) => m.topic === `beats/osquery/distributed/${queryId}`), 10_000, 'distributed result');
    const answer = JSON.parse(out.find((m) => m.topic === `beats/osquery/distributed/${queryId}`)!.payload.toString()) as Record<
      string,
      unknown
    >;
    t.same(answer, { queryId, hostIdentifier: 'host-a', status: 0, rows: [{ version: '5.12.1' }] });
    const before = out.length;
    t.equal((await post(port, '/distributed/write', { node_key: nodeKey, queries: { [queryId]: [{ version: 'forged' }] } })).status, 200);
    await ops.publishAsync('beats/osquery/query', 'not json', { qos: 1 });
    await until(() => out.some((m) => m.topic === 'beats/osquery/query/rejected'), 10_000, 'bad command rejected');
    t.equal(
      out.slice(before).filter((m) => m.topic.startsWith('beats/osquery/distributed/')).length,
      0,
      'a replayed result is not published',
    );

    t.notOk(readFileSync(broker.logFile, 'utf8').includes(SECRET), 'the enroll secret is never logged');

    // restart: the node key is still valid
    await broker.broker.close();
    const again = await osqueryBroker(t, dir, port);
    const cfg2 = await post(again.port, '/config', { node_key: nodeKey });
    t.equal(cfg2.status, 200, 'node key survives a restart');
    t.equal(cfg2.body.node_invalid, false);
  },
);

t.test('replayed wire format, hostile input: clear 4xx, nothing published', async (t) => {
  const { broker, port } = await osqueryBroker(t);
  const sub = await connectClient(t, broker.mqttUrl);
  const out = collect(sub);
  await sub.subscribeAsync('beats/osquery/#', { qos: 1 });
  const nodeKey = (await post(port, '/enroll', { enroll_secret: SECRET, host_identifier: 'host-b' })).body.node_key as string;

  const wrongSecret = await post(port, '/enroll', { enroll_secret: 'guess', host_identifier: 'x' });
  t.equal(wrongSecret.status, 401);
  t.equal(wrongSecret.body.node_invalid, true);
  for (const key of ['A'.repeat(43), "' or 1=1 --", 42, undefined]) {
    const r = await post(port, '/log', { node_key: key, log_type: 'result', data: [] });
    t.equal(r.status, 401, `node key ${String(key)}`);
    t.equal(r.body.node_invalid, true);
  }
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20));
  t.equal((await post(port, '/log', null, { raw: bomb })).status, 400, 'gzip bytes without content-encoding: not JSON');
  const bombGz = await new Promise<Answer>((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/log',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        ca: readFileSync(pki.caCert),
        servername: 'localhost',
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown> }),
        );
      },
    );
    req.on('error', reject);
    req.end(bomb);
  });
  t.equal(bombGz.status, 413, 'gzip bomb');
  t.equal((await post(port, '/log', null, { raw: Buffer.alloc(2 * 1024 * 1024, 0x20) })).status, 413, 'oversized body');
  t.equal((await post(port, '/log', null, { raw: Buffer.from('{"node_key":') })).status, 400, 'malformed JSON');
  t.equal((await post(port, '/log', { node_key: nodeKey, log_type: 'nope', data: [] })).status, 400, 'bad log_type');
  const mixed = await post(port, '/log', {
    node_key: nodeKey,
    log_type: 'result',
    data: [{ name: 'ok', columns: { a: '1' } }, { columns: {} }],
  });
  t.equal(mixed.status, 400, 'a batch with a malformed row');
  t.match(mixed.body.error, /query name/);
  t.equal((await post(port, '/distributed/write', { node_key: nodeKey, queries: { x: 'rows' } })).status, 400, 'bad distributed rows');

  // still serving after all that
  t.equal(
    (await post(port, '/log', { node_key: nodeKey, log_type: 'result', data: [{ name: 'sentinel', columns: { a: '1' } }] })).status,
    200,
  );
  await until(() => out.some((m) => m.topic === 'beats/osquery/result/sentinel'), 10_000, 'sentinel');
  t.same(
    out.map((m) => m.topic),
    ['beats/osquery/enrolled/host-b', 'beats/osquery/result/sentinel'],
    'nothing from the refused requests was published (only the one enrollment that succeeded, and the sentinel)',
  );
});

t.test('replayed wire format: per-host config overrides from osquery_host_config_dir, edits picked up without a restart', async (t) => {
  const dir = tempDir();
  const { port } = await osqueryBroker(t, dir);
  mkdirSync(join(dir, 'hosts'));
  const key = async (host: string) =>
    (await post(port, '/enroll', { enroll_secret: SECRET, host_identifier: host, host_details: {} })).body.node_key as string;
  const [a, b, odd] = [await key('host-a'), await key('host-b'), await key('../host-a')];
  const configOf = async (nodeKey: string) => (await post(port, '/config', { node_key: nodeKey })).body;

  t.same((await configOf(a)).options, { distributed_interval: 10 }, 'without a host file: the default');
  writeFileSync(
    join(dir, 'hosts', 'host-a.json'),
    JSON.stringify({
      options: { logger_tls_period: 5 },
      schedule: { usb: { query: 'select * from usb_devices', interval: 30 } },
      packs: {},
    }),
  );
  const forA = await configOf(a);
  t.same(forA.options, { distributed_interval: 10, logger_tls_period: 5 }, 'options merged entry by entry');
  t.same(Object.keys(forA.schedule as object).sort(), ['processes', 'usb'], 'schedule: the host query added to the default ones');
  t.same(forA.packs, {}, 'the host file adds sections the default lacks');
  t.same((await configOf(b)).options, { distributed_interval: 10 }, 'another host still gets the default');
  t.same(
    (await configOf(odd)).options,
    { distributed_interval: 10 },
    "a host identifier that is not a file name (../host-a) gets the default, never another host's file",
  );

  writeFileSync(join(dir, 'hosts', 'host-a.json'), JSON.stringify({ options: { logger_tls_period: 60 } }));
  t.same(
    (await configOf(a)).options,
    { distributed_interval: 10, logger_tls_period: 60 },
    'an edit applies at the next request, no restart',
  );
  writeFileSync(join(dir, 'hosts', 'host-b.json'), '[1, 2]');
  t.equal(
    (await post(port, '/config', { node_key: b })).status,
    500,
    'a host file that is not a JSON object is an error for that host only',
  );
  t.same((await configOf(a)).options, { distributed_interval: 10, logger_tls_period: 60 }, 'and the other hosts keep being served');
});

t.test('replayed wire format: osquery_endpoint serves the paths an agent was started with', async (t) => {
  const { port } = await osqueryBroker(t, tempDir(), undefined, [
    'osquery_endpoint enroll /fleet/enroll',
    'osquery_endpoint config /fleet/config',
    'osquery_endpoint config /enroll-typo-free/config',
    'osquery_endpoint logger /v1/log',
  ]);
  const enrolled = await post(port, '/fleet/enroll', { enroll_secret: SECRET, host_identifier: 'host-p', host_details: {} });
  t.equal(enrolled.status, 200, '--enroll_tls_endpoint=/fleet/enroll');
  const nodeKey = enrolled.body.node_key as string;
  t.equal((await post(port, '/fleet/config', { node_key: nodeKey })).status, 200, '--config_tls_endpoint=/fleet/config');
  t.equal((await post(port, '/enroll-typo-free/config', { node_key: nodeKey })).status, 200, 'a second path for the same endpoint');
  t.equal(
    (await post(port, '/v1/log', { node_key: nodeKey, log_type: 'status', data: [] })).status,
    200,
    'a path that is also built in is served once',
  );
  t.equal((await post(port, '/config', { node_key: nodeKey })).status, 200, 'the built-in paths stay');
  t.equal(
    (await post(port, '/fleet/log', { node_key: nodeKey, log_type: 'status', data: [] })).status,
    404,
    'paths nobody configured are not answered',
  );
});

t.test('osquery_endpoint: bad names and paths are config errors naming the key', async (t) => {
  const dir = tempDir();
  for (const [line, want] of [
    ['osquery_endpoint enrol /x', /osquery_endpoint: expected one of enroll\|config\|logger/],
    ['osquery_endpoint enroll x/y', /expected a URL path/],
    ['osquery_endpoint enroll /a b', /osquery_endpoint/],
  ] as const) {
    const file = join(dir, 'e.conf');
    writeFileSync(
      file,
      `listener 0 127.0.0.1\nbeat osquery\nosquery_listener 8443\nosquery_certfile ${pki.serverCert}\nosquery_keyfile ${pki.serverKey}\nosquery_enroll_secret_file ${join(dir, 's')}\n${line}\n`,
    );
    t.throws(() => loadConfig(file), want, line);
  }
});
