import t, { type Test } from 'tap';
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { freePort, startTestBroker, tempDir } from '../helpers/broker.js';
import type { RunningBroker } from '../../app/assemble.js';
import { connectClient, collect, until } from '../helpers/mqtt.js';
import { fixture } from '../helpers/paths.js';
import { applyHeaderLine, defaultTsvHeader, parseTsvRecord } from '../../bridges/zeek/tsv.js';
import { parseJsonRecord, stampRecord } from '../../bridges/zeek/record.js';
import { SseClient } from './sse-client.js';
import { startRedis } from '../helpers/redis.js';

const lines = (name: string) =>
  readFileSync(fixture('zeek', name), 'utf8')
    .split('\n')
    .filter((l) => l !== '');
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The payloads the beat must publish for a fixture (raw format), computed with the parsers tested in zeek-parse.test.ts. */
function expectedPayloads(name: string, topic: string): string[] {
  const h = defaultTsvHeader();
  const out: string[] = [];
  for (const line of lines(name)) {
    if (line.startsWith('#')) {
      applyHeaderLine(h, line);
      continue;
    }
    const rec = line.startsWith('{') ? parseJsonRecord(line) : parseTsvRecord(h, line);
    stampRecord(rec);
    out.push(`${topic} ${JSON.stringify(rec)}`);
  }
  return out;
}

/** Appends lines one by one, yielding now and then so the beat tails a growing file. */
async function writeLines(file: string, ls: string[], every = 7): Promise<void> {
  for (let i = 0; i < ls.length; i++) {
    appendFileSync(file, `${ls[i]}\n`);
    if (i % every === every - 1) await pause(3);
  }
}

async function metric(httpPort: number, line: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const m = text.split('\n').find((l) => l.startsWith(line));
  return m === undefined ? 0 : Number(m.split(' ').pop());
}

/**
 * Writes the fixtures line by line while the beat tails them, rotates dns.log mid-stream, restarts the
 * broker mid-stream (lines are also written while it is down), and checks that every record arrives
 * exactly once. With Redis, broker state and the beat's checkpoints live in Redis and an MQTT subscriber
 * with a persistent session is checked too; without it, checkpoints live in the beat's state file.
 */
async function rotationAndRestart(t: Test, redisUrl?: string): Promise<void> {
  const dir = tempDir();
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  const [port, httpPort] = [await freePort(), await freePort()];
  const conf = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    `http_listener ${httpPort} 127.0.0.1`,
    `persistence_location ${dir}`,
    redisUrl ? `persistence_redis_url ${redisUrl}` : '',
    'beat zeek',
    `zeek_log_dir ${logs}`,
    'zeek_start beginning',
    // QoS 1: the persistent-session subscriber gets what the restarted broker publishes before it reconnects
    'beat_qos 1',
    '',
  ].join('\n');
  let b = await startTestBroker(t, conf, { dir });

  const got: string[] = [];
  /** What the subscriber had received when the broker was stopped. */
  let gotBeforeRestart = new Set<string>();
  // what the beat itself published, in both broker runs
  const published: string[] = [];
  const watch = (broker: RunningBroker) =>
    broker.aedes.on('publish', (packet, client) => {
      if (client?.id === '$beat/zeek') published.push(`${packet.topic} ${packet.payload.toString()}`);
    });
  watch(b.broker);
  if (redisUrl) {
    const sub = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'zeek-sub', clean: false, reconnectPeriod: 100 });
    t.teardown(() => sub.end(true));
    sub.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
    await new Promise((r) => sub.once('connect', r));
    await sub.subscribeAsync('beats/zeek/#', { qos: 1 });
  }
  const sse = new SseClient(t, `http://127.0.0.1:${httpPort}/sse?topic=beats/zeek/%23`, { reconnect: true, retryMs: 100 });
  await sse.open();

  const expected = [
    ...expectedPayloads('conn.log', 'beats/zeek/conn'),
    ...expectedPayloads('dns.log', 'beats/zeek/dns'),
    ...expectedPayloads('ssl.ndjson', 'beats/zeek/ssl'),
    ...expectedPayloads('notice.log', 'beats/zeek/notice'),
  ];

  // TSV conn.log, line by line
  await writeLines(join(logs, 'conn.log'), lines('conn.log'));
  // TSV dns.log: half, then Zeek's rotation (rename, new file with its own header), then the rest
  const dns = lines('dns.log');
  const header = dns.filter((l) => l.startsWith('#') && !l.startsWith('#close'));
  const records = dns.filter((l) => !l.startsWith('#'));
  await writeLines(join(logs, 'dns.log'), [...header, ...records.slice(0, 70)]);
  renameSync(join(logs, 'dns.log'), join(logs, 'dns.2018-03-24-17-00-00.log'));
  await writeLines(join(logs, 'dns.log'), [...header, ...records.slice(70, 100)]);

  // broker restart in the middle of the new dns.log and of ssl.log (JSON), with lines written while it is down
  const ssl = lines('ssl.ndjson');
  await writeLines(join(logs, 'ssl.log'), ssl.slice(0, 40));
  await b.broker.close();
  gotBeforeRestart = new Set(got);
  await writeLines(join(logs, 'dns.log'), records.slice(100, 130));
  await writeLines(join(logs, 'ssl.log'), ssl.slice(40, 80));
  b = await startTestBroker(t, conf, { dir });
  watch(b.broker);
  await writeLines(join(logs, 'dns.log'), [...records.slice(130), '#close\t2018-03-24-17-15-33']);
  await writeLines(join(logs, 'ssl.log'), ssl.slice(80));
  // a log type that appears later
  await writeLines(join(logs, 'notice.log'), lines('notice.log'));

  await until(
    () =>
      sse.events.length >= expected.length && published.length >= expected.length && (!redisUrl || new Set(got).size >= expected.length),
    20_000,
    `${expected.length} records`,
  ).catch((err: Error) => {
    throw new Error(
      `${err.message}: the beat published ${published.length}, SSE got ${sse.events.length}${redisUrl ? `, the MQTT subscriber ${new Set(got).size}` : ''}`,
    );
  });
  await pause(300);
  t.equal(published.length, expected.length, 'the beat published no record twice');
  t.same([...published].sort(), [...expected].sort(), 'the beat published every record exactly once across rotation and restart');
  const sseGot = sse.events.map((e) => `${e.event} ${e.data}`);
  t.equal(sseGot.length, expected.length, 'no SSE event more than expected');
  t.same([...sseGot].sort(), [...expected].sort(), 'SSE: every record exactly once, with typed fields');
  t.ok(sse.connections >= 2, 'the SSE client reconnected across the restart');
  if (redisUrl) {
    t.same([...new Set(got)].sort(), [...expected].sort(), 'MQTT: every record, with typed fields');
    // QoS 1 is at-least-once: a message the subscriber acknowledged just before the broker stopped may still be
    // in the broker's Redis outgoing queue and is sent again by the restarted broker (the beat published it once)
    const repeats = got.filter((m, i) => got.indexOf(m) !== i);
    t.ok(
      repeats.every((m) => gotBeforeRestart.has(m)),
      `repeats (${repeats.length}) are only broker redeliveries of records delivered before the restart`,
    );
  }
  const conn = JSON.parse(sse.on('beats/zeek/conn')[0].data);
  t.match(conn, {
    ts: 1329843175.736107,
    'id.orig_p': 37604,
    duration: 0.112432,
    tunnel_parents: [],
    '@timestamp': '2012-02-21T16:52:55.736107Z',
  });
  t.same(JSON.parse(sse.on('beats/zeek/dns')[0].data).TTLs, [2230, 41830]);
  t.equal(await metric(httpPort, 'mqprobe_beat_lines_total{beat="zeek",outcome="malformed"}'), 0, 'no line was malformed');
  // closed here, while Redis still runs (teardowns run in the order they were registered: Redis first)
  await b.broker.close();
}

t.test(
  'Zeek TSV and JSON logs flow exactly once across rotation and a broker restart (published into the broker, MQTT persistent session and SSE; Redis state)',
  async (t) => {
    const redis = await startRedis(t);
    await rotationAndRestart(t, redis.url);
  },
);

t.test('the same with checkpoints in the beat state file (SSE; memory broker)', async (t) => {
  await rotationAndRestart(t);
});

t.test('malformed lines, binary garbage, a 10 MB line and a deleted directory are counted and skipped', async (t) => {
  const dir = tempDir();
  const logs = join(dir, 'logs');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\nhttp_listener 0 127.0.0.1\npersistence_location ${dir}\nbeat zeek\nzeek_log_dir ${logs}\n`,
  );
  const sub = await connectClient(t, b.mqttUrl);
  const got = collect(sub);
  await sub.subscribeAsync('beats/zeek/#');
  await pause(300);
  mkdirSync(logs);
  const conn = lines('conn.log');
  const file = join(logs, 'conn.log');
  writeFileSync(file, conn.slice(0, 9).join('\n') + '\n');
  appendFileSync(file, 'only\ttwo\n');
  appendFileSync(file, '{"ts": 12, "broken": \n');
  appendFileSync(file, Buffer.from([0x00, 0xff, 0xfe, 0x09, 0x80, 0x0a]));
  appendFileSync(file, '#mystery\tdirective\n');
  appendFileSync(file, Buffer.alloc(10 * 1024 * 1024, 'A'));
  appendFileSync(file, '\n');
  appendFileSync(file, conn[9] + '\n');
  appendFileSync(file, '[1,2,3]\n');
  await until(() => got.length === 2, 15_000, 'the two good records');
  t.same(
    got.map((m) => JSON.parse(m.payload.toString()).uid),
    ['CjhGID4nQcgTWjvg4c', 'CCvvfg3TEfuqmmG4bh'],
  );
  t.equal(await metric(b.httpPort!, 'mqprobe_beat_lines_total{beat="zeek",outcome="malformed"}'), 5, 'five malformed lines counted');
  t.equal(await metric(b.httpPort!, 'mqprobe_beat_lines_total{beat="zeek",outcome="oversized"}'), 1, 'the 10 MB line counted as oversized');
  const logText = readFileSync(b.logFile, 'utf8');
  t.match(logText, /skipped a malformed line in .*conn\.log at byte \d+: 2 values for 20 fields/);
  t.match(logText, /skipped a line of \d+\+? bytes/);

  rmSync(logs, { recursive: true });
  await pause(500);
  mkdirSync(logs);
  writeFileSync(join(logs, 'conn.log'), conn.slice(0, 8).join('\n') + '\n' + conn[10] + '\n');
  await until(() => got.length === 3, 10_000, 'a record after the directory came back');
  t.equal(await metric(b.httpPort!, 'mqprobe_beat_restarts_total{beat="zeek"}'), 0, 'the beat never failed');
  t.equal(await metric(b.httpPort!, 'mqprobe_beat_up{beat="zeek"}'), 1);
  const c = await connectClient(t, b.mqttUrl);
  await c.publishAsync('alive', 'yes', { qos: 1 });
});

t.test('zeek_start end skips what is already there; beat_format ngsi gives works-beats entities', async (t) => {
  const dir = tempDir();
  const logs = join(dir, 'logs');
  mkdirSync(logs);
  const conn = lines('conn.log');
  writeFileSync(join(logs, 'conn.log'), conn.slice(0, 10).join('\n') + '\n');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\npersistence_location ${dir}\nbeat zeek\nzeek_log_dir ${logs}\nzeek_sensor_id edge-7\nbeat_format ngsi\nbeat_output mqtt\n`,
  );
  const sub = await connectClient(t, b.mqttUrl);
  const got = collect(sub);
  await sub.subscribeAsync('beats/zeek/#');
  await pause(400);
  appendFileSync(join(logs, 'conn.log'), conn[10] + '\n');
  await until(() => got.length === 1);
  await pause(200);
  t.equal(got.length, 1, 'only the line written after the start');
  const e = JSON.parse(got[0].payload.toString());
  t.equal(got[0].topic, 'beats/zeek/conn');
  t.equal(e.id, 'urn:ngsi-ld:Conn:edge-7');
  t.equal(e.type, 'Conn');
  t.same(e.source_ip, {
    type: 'String',
    value: '199.233.217.249',
    metadata: { TimeInstant: { type: 'DateTime', value: '2012-02-21T16:53:14.151Z' } },
  });
  t.same(e.destination_port.value, 33582);
  t.equal(e.ts.type, 'Long');
  t.equal(e.ts.value, 1329843194152);
  t.same(e.tunnel_parents.value, []);
});
