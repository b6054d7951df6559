import t from 'tap';
import { appendFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, startTestBroker, tempDir } from '../helpers/broker.js';
import type { RunningBroker } from '../../app/assemble.js';
import { connectClient, collect, until } from '../helpers/mqtt.js';
import { fixture } from '../helpers/paths.js';
import { SseClient } from './sse-client.js';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const lines = (...path: string[]) =>
  readFileSync(fixture(...path), 'utf8')
    .split('\n')
    .filter((l) => l !== '');
/** A pretty-printed osquery sample as the one line a logger writes. */
const oneLine = (...path: string[]) => JSON.stringify(JSON.parse(readFileSync(fixture(...path), 'utf8')));

async function writeLines(file: string, ls: string[]): Promise<void> {
  for (const l of ls) {
    appendFileSync(file, `${l}\n`);
    await pause(2);
  }
}

async function metric(httpPort: number, line: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const m = text.split('\n').find((l) => l.startsWith(line));
  return m === undefined ? 0 : Number(m.split(' ').pop());
}

// Fleet's result log (9 lines), osqueryd's documented examples (4 lines) and the single-object samples
const results = [
  ...lines('fleet', 'osquery_result.ndjson'),
  ...lines('osquery', 'osqueryd.results.docs-examples.ndjson'),
  oneLine('osquery', 'result-event-added.json'),
  oneLine('osquery', 'result-event-removed.json'),
  oneLine('osquery', 'result-snapshot.json'),
  oneLine('osquery', 'result-batch-diffresults.json'),
];
const statuses = lines('fleet', 'osquery_status.ndjson');

t.test('Fleet result and status logs flow to MQTT and SSE exactly once across rotation and a broker restart', async (t) => {
  const dir = tempDir();
  const logs = join(dir, 'fleet');
  mkdirSync(logs);
  const resultLog = join(logs, 'osquery_result');
  const statusLog = join(logs, 'osquery_status');
  const [port, httpPort] = [await freePort(), await freePort()];
  const conf = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    `http_listener ${httpPort} 127.0.0.1`,
    `persistence_location ${dir}`,
    'beat fleet',
    `fleet_result_log ${resultLog}`,
    `fleet_status_log ${statusLog}`,
    'fleet_start beginning',
    '',
  ].join('\n');
  let b = await startTestBroker(t, conf, { dir });
  const published: { topic: string; payload: string }[] = [];
  const watch = (broker: RunningBroker) =>
    broker.aedes.on('publish', (packet, client) => {
      if (client?.id === '$beat/fleet') published.push({ topic: packet.topic, payload: packet.payload.toString() });
    });
  watch(b.broker);
  const sse = new SseClient(t, `http://127.0.0.1:${httpPort}/sse?topic=beats/fleet/%23`, { reconnect: true, retryMs: 100 });
  await sse.open();

  await writeLines(resultLog, results.slice(0, 6));
  await writeLines(statusLog, statuses.slice(0, 1));
  // rotation as a logrotate/Fleet restart does it: renamed away, a new file appears
  await until(() => published.length >= 6, 10_000, 'the first rows');
  renameSync(resultLog, `${resultLog}.1`);
  await writeLines(resultLog, results.slice(6, 10));
  // broker restart, with lines written while it is down
  await until(() => published.length >= 11, 10_000, 'the rows after rotation');
  await b.broker.close();
  await writeLines(resultLog, results.slice(10, 13));
  await writeLines(statusLog, statuses.slice(1, 2));
  b = await startTestBroker(t, conf, { dir });
  watch(b.broker);
  await writeLines(resultLog, results.slice(13));
  await writeLines(statusLog, statuses.slice(2));

  // rows: Fleet's 9 lines give one each (its snapshots have one row, its diffResults one removed row and `"added": ""`);
  // the docs examples 1 + 1 + 4 (snapshot) + 2 (diffResults); the samples 1 + 1 + 4 (snapshot) + 2 (diffResults)
  const expectedRows = 9 + 8 + 8;
  const expected = expectedRows + statuses.length;
  await until(() => sse.events.length >= expected && published.length >= expected, 20_000, `${expected} records`);
  await pause(300);
  t.equal(published.length, expected, 'the beat published every row once: none lost or repeated across rotation and restart');
  t.same(
    sse.events.map((e) => `${e.event} ${e.data}`).sort(),
    published.map((p) => `${p.topic} ${p.payload}`).sort(),
    'SSE got exactly what MQTT got',
  );
  t.ok(sse.connections >= 2, 'the SSE client reconnected across the restart');

  const rows = published
    .filter((p) => p.topic.startsWith('beats/fleet/result/'))
    .map((p) => ({ topic: p.topic, ...JSON.parse(p.payload) }));
  t.equal(rows.length, expectedRows);
  t.match(
    rows[0],
    {
      topic: 'beats/fleet/result/pack/Global/system_info',
      name: 'pack/Global/system_info',
      action: 'added',
      format: 'event',
      hostIdentifier: 'some_uuid',
      query_id: 115,
      decorations: { host_uuid: 'some_uuid', username: 'zwass' },
      columns: { cpu_brand: 'Intel(R) Core(TM) i7-4770HQ CPU @ 2.20GHz', hostname: 'hostimus', physical_memory: '17179869184' },
    },
    'event format: columns, action, query name, host and decorations',
  );
  const time = rows.filter((r) => r.name === 'pack/Global/time');
  t.ok(time.length >= 2 && time.every((r) => r.action === 'snapshot' && r.format === 'snapshot'), 'snapshot: one message per row');
  const diffs = rows.filter((r) => r.topic === 'beats/fleet/result/processes' && r.format === 'differential');
  t.same(
    diffs.map((r) => [r.action, r.columns.pid]),
    [
      ['added', '97830'],
      ['removed', '97650'],
      ['added', '97830'],
      ['removed', '97650'],
    ],
    'diffResults: one message per added and removed row',
  );
  t.same(
    rows
      .filter((r) => r.name === 'process_snapshot')
      .slice(0, 4)
      .map((r) => r.columns.path),
    ['/sbin/launchd', '/usr/sbin/syslogd', '/usr/libexec/UserEventAgent', '/usr/libexec/kextd'],
    'snapshot rows in order',
  );
  const status = published.filter((p) => p.topic === 'beats/fleet/status').map((p) => JSON.parse(p.payload));
  t.match(status[0], {
    hostIdentifier: '878a6edf-7131-4e28-95a2-d344905cacab',
    message: 'Could not get RPM header flag.',
    decorations: { hostname: 'e0088d28a63f' },
  });
  t.same(
    status.map((s) => s.message),
    ['Could not get RPM header flag.', 'some message', 'warning!'],
  );
  t.equal(await metric(httpPort, 'mqprobe_beat_lines_total{beat="fleet",outcome="malformed"}'), 0, 'no line was malformed');
});

t.test('malformed, binary, hostile and oversized Fleet lines are counted and skipped; glog status lines are read', async (t) => {
  const dir = tempDir();
  const resultLog = join(dir, 'result.log');
  const statusLog = join(dir, 'osqueryd.INFO');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\nhttp_listener 0 127.0.0.1\npersistence_location ${dir}\nbeat fleet\nfleet_result_log ${resultLog}\nfleet_status_log ${statusLog}\nfleet_max_line_bytes 4k\n`,
  );
  const sub = await connectClient(t, b.mqttUrl);
  const got = collect(sub);
  await sub.subscribeAsync('beats/fleet/#');
  await pause(300);
  writeFileSync(resultLog, '');
  writeFileSync(statusLog, '');
  await pause(300);
  appendFileSync(resultLog, 'not json\n');
  appendFileSync(resultLog, '[1,2]\n');
  appendFileSync(resultLog, '{"name": 5, "columns": {}}\n');
  appendFileSync(resultLog, Buffer.from([0x00, 0xff, 0xfe, 0x7b, 0x0a]));
  appendFileSync(resultLog, `{"name":"big","columns":{"x":"${'A'.repeat(10_000)}"},"action":"added"}\n`);
  appendFileSync(resultLog, '{"name":"hostile","action":"added","__proto__":{"x":1},"columns":{"__proto__":{"polluted":true},"ok":"1"}}\n');
  appendFileSync(resultLog, `${results[0]}\n`);
  appendFileSync(statusLog, lines('osquery', 'osqueryd.INFO.glog-status.log').join('\n') + '\n');
  await until(() => got.length === 2 + 4, 10_000, 'two result rows and four status lines');
  t.same(
    got
      .map((m) => m.topic)
      .slice(0, 2)
      .sort(),
    ['beats/fleet/result/hostile', 'beats/fleet/result/pack/Global/system_info'].sort(),
  );
  const hostile = JSON.parse(got.find((m) => m.topic === 'beats/fleet/result/hostile')!.payload.toString());
  t.same(Object.keys(hostile.columns), ['__proto__', 'ok'], 'a __proto__ column is data, carried as it came');
  t.same(Object.getOwnPropertyDescriptor(hostile, '__proto__')?.value, { x: 1 }, 'so is a top-level __proto__ key');
  t.equal(({} as { polluted?: unknown }).polluted, undefined, 'nothing polluted');
  const glog = got.filter((m) => m.topic === 'beats/fleet/status').map((m) => JSON.parse(m.payload.toString()));
  t.match(
    glog[0],
    { severity: 0, filename: 'init.cpp', line: 380, message: 'osquery initialized [version=2.4.0]' },
    'glog status line typed',
  );
  t.equal(await metric(b.httpPort!, 'mqprobe_beat_lines_total{beat="fleet",outcome="malformed"}'), 4, 'four malformed lines counted');
  t.equal(await metric(b.httpPort!, 'mqprobe_beat_lines_total{beat="fleet",outcome="oversized"}'), 1, 'the long line counted as oversized');
  t.equal(await metric(b.httpPort!, 'mqprobe_beat_restarts_total{beat="fleet"}'), 0, 'the beat never failed');
});
