import t from 'tap';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import mqtt from 'mqtt';
import { spawnCli, startTestBroker, tempDir, type Teardown } from '../helpers/broker.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { connectClient, collect, until } from '../helpers/mqtt.js';
import { fixture } from '../helpers/paths.js';
import { defaultDetectConfig } from '../../detect/config.js';
import { replayMosquittoLogs } from '../../detect/replay-log.js';
import type { AlertEvent } from '../../detect/index.js';

const BOB = 'b0b pass with spaces';
const SENSOR = 'Tr1cky:$pass/word';

/** Connects once and resolves when the broker answered (accepted, refused or closed). */
async function once(url: string, opts: mqtt.IClientOptions): Promise<void> {
  const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  await new Promise<void>((resolve) => {
    c.once('connect', () => resolve());
    c.once('error', () => resolve());
    c.once('close', () => resolve());
  });
  await c.endAsync();
}

/** The same attacks against either broker: password guessing, a `#` subscriber, a reconnect storm of one id, a flood. */
async function attack(t: Teardown, url: string): Promise<void> {
  for (let i = 0; i < 12; i++) await once(url, { clientId: 'guesser', username: 'alice', password: `guess-${i}` });
  const snoop = await connectClient(t, url, { clientId: 'snoop', username: 'bob', password: BOB });
  await snoop.subscribeAsync('#', { qos: 0 });
  await snoop.endAsync();
  for (let i = 0; i < 11; i++) await once(url, { clientId: 'flappy', username: 'bob', password: BOB });
  const flood = await connectClient(t, url, { clientId: 'flooder', username: 'sensor-01', password: SENSOR });
  for (let i = 0; i < 400; i++) flood.publish('plant/line1/temp', 'x', { qos: 0 });
  await flood.endAsync();
}

const pairs = (alerts: AlertEvent[]) =>
  [...new Set(alerts.filter((a) => a.event.action === 'alert-raised').map((a) => `${a.rule.name} | ${a.mqprobe.detect.entity}`))].sort();

async function replay(files: string[], opts: { timestampFormat?: string; now?: number } = {}) {
  let text = '';
  const out = new Writable({
    write(chunk, _enc, cb) {
      text += chunk;
      cb();
    },
  });
  const stats = await replayMosquittoLogs(files, out, { config: defaultDetectConfig(), ...opts });
  const alerts = text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AlertEvent);
  return { stats, alerts };
}

/** A Mosquitto 2.0.11 writing its log to a file with the given log_type lines (none: its defaults). */
async function mosquittoWithLog(t: Teardown, logTypes: string, extra = '') {
  const dir = tempDir('mqprobe-mosquitto-');
  chmodSync(dir, 0o755);
  const logDir = join(dir, 'log');
  mkdirSync(logDir);
  chmodSync(logDir, 0o777); // Mosquitto writes it as user mosquitto
  const passwd = join(dir, 'passwd');
  copyFileSync(fixture('mosquitto', 'passwd'), passwd);
  chmodSync(passwd, 0o644);
  const log = join(logDir, 'mosquitto.log');
  const peer = await startMosquitto(t, `allow_anonymous false\npassword_file ${passwd}\nlog_dest file ${log}\n${logTypes}${extra}`, {
    dir,
    verbose: false,
  });
  return { peer, log };
}

t.test('live mqprobe and replayed Mosquitto 2.0.11 logs raise the same alerts for the same attacks', async (t) => {
  // live mqprobe: the alerts on $SYS/broker/alerts/#
  const { mqttUrl } = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous false\npassword_file ${fixture('mosquitto', 'passwd')}\n`,
  );
  const soc = await connectClient(t, mqttUrl, { clientId: 'soc', username: 'bob', password: BOB });
  const got = collect(soc);
  await soc.subscribeAsync('$SYS/broker/alerts/#');
  await attack(t, mqttUrl);
  const live = () => got.map((m) => JSON.parse(m.payload.toString()) as AlertEvent);
  await until(() => pairs(live()).length >= 5, 10_000, 'the live alerts');
  await new Promise((r) => setTimeout(r, 300)); // nothing more arrives
  const expected = pairs(live());
  t.same(
    expected,
    [
      'auth-brute-force | ip 127.0.0.1',
      'client-flapping | client flappy',
      'publish-rate | client flooder',
      'topic-rate | topic plant/line1/temp',
      'wildcard-subscription | client snoop',
    ],
    'what live mqprobe raises',
  );

  // Mosquitto with log_type all
  const all = await mosquittoWithLog(t, 'log_type all\n');
  await attack(t, all.peer.url);
  await all.peer.stop('SIGTERM');
  const a = await replay([all.log]);
  t.same(pairs(a.alerts), expected, 'log_type all: the replay raises what live mqprobe raised');
  t.notOk(
    a.stats.notes.some((n) => n.startsWith('no ')),
    'log_type all: nothing missing but what the log never says',
  );
  t.ok(
    a.stats.notes.some((n) => n.includes('credential-stuffing cannot be judged')),
    'says refused logins carry no user name',
  );

  // Mosquitto with its default log types (error, warning, notice, information)
  const def = await mosquittoWithLog(t, '');
  await attack(t, def.peer.url);
  await def.peer.stop('SIGTERM');
  const d = await replay([def.log]);
  t.same(
    pairs(d.alerts),
    expected.filter((p) => !/^(wildcard-subscription|publish-rate|topic-rate) /.test(p)),
    'default log types: the alerts the notice lines support',
  );
  t.ok(d.stats.notes.includes('no subscribe lines: log_type subscribe is off (or nobody subscribed)'), 'says it saw no subscriptions');
  t.ok(
    d.stats.notes.some((n) => n.startsWith('no publish lines: log_type debug is off')),
    'says it saw no publishes',
  );
});

t.test('Mosquitto 2.0.11 with log_timestamp_format: read back with --log-timestamp-format', async (t) => {
  const fmt = '%Y-%m-%dT%H:%M:%S';
  const m = await mosquittoWithLog(t, 'log_type all\n', `log_timestamp_format ${fmt}\n`);
  for (let i = 0; i < 12; i++) await once(m.peer.url, { clientId: 'guesser', username: 'alice', password: `guess-${i}` });
  await m.peer.stop('SIGTERM');
  t.match(readFileSync(m.log, 'utf8'), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: mosquitto version/, 'Mosquitto wrote the custom format');
  const r = await replay([m.log], { timestampFormat: fmt });
  t.same(pairs(r.alerts), ['auth-brute-force | ip 127.0.0.1']);
  t.ok(Math.abs(Date.parse(r.alerts[0]['@timestamp']) - Date.now()) < 60_000, 'timestamps read as local time');
  // ISO-like prefixes are also read without the option
  const auto = await replay([m.log]);
  t.same(pairs(auto.alerts), ['auth-brute-force | ip 127.0.0.1'], 'ISO-like timestamps are recognised without the option');
});

/** Mosquitto 2.0 lines for n refused logins from ip, starting at epoch second t0. */
const refusals = (n: number, ip: string, t0: number, stamp = (s: number) => `${s}: `) =>
  Array.from({ length: n }, (_, i) => [
    `${stamp(t0 + i)}New connection from ${ip}:${40000 + i} on port 1883.`,
    `${stamp(t0 + i)}Client <unknown> disconnected, not authorised.`,
  ]).flat();

t.test('replay input: log_timestamp off, rotated gzip files merged in time order, several brokers', async (t) => {
  const dir = tempDir();
  const t0 = Math.floor(Date.now() / 1000) - 3600;
  // the rotated older file is gzip and comes second on the command line
  writeFileSync(join(dir, 'mosquitto.log'), refusals(5, '10.0.0.7', t0 + 5).join('\n'));
  writeFileSync(join(dir, 'mosquitto.log.1.gz'), gzipSync(refusals(5, '10.0.0.7', t0).join('\n')));
  const r = await replay([join(dir, 'mosquitto.log'), join(dir, 'mosquitto.log.1.gz')]);
  t.same(pairs(r.alerts), ['auth-brute-force | ip 10.0.0.7'], '5 + 5 refusals over two files reach the threshold');
  t.same(r.alerts[0].mqprobe.detect.evidence.sequences, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'the events are merged in time order');

  // log_timestamp false: no times, so no windowed rule may judge them
  const timeless = [...refusals(20, '10.0.0.8', 0, () => ''), 'New client connected from 10.0.0.9:5 as spy (p2, c1, k60).', 'spy 0 #'];
  writeFileSync(join(dir, 'plain.log'), timeless.join('\n'));
  const p = await replay([join(dir, 'plain.log')]);
  t.same(pairs(p.alerts), ['wildcard-subscription | client spy'], 'without timestamps: only single-event rules');
  t.ok(p.stats.notes[0].startsWith('no timestamps (log_timestamp false)'), 'and it says so');
});

t.test(
  'hostile logs: control characters, 1 MB lines, lines from the future, a binary file: clear notes or errors, nothing else lost',
  async (t) => {
    const dir = tempDir();
    const t0 = Math.floor(Date.now() / 1000) - 600;
    const lines = refusals(10, '10.0.0.7', t0);
    lines.splice(3, 0, `${t0}: New client connected from 10.0.0.1:1 as evil\x1b[2J (p2, c1, k60).`);
    lines.splice(5, 0, `${t0}: ${'A'.repeat(1024 * 1024)}`);
    lines.splice(7, 0, `${t0 + 10 * 365 * 86400}: New client connected from 10.6.6.6:1 as future (p2, c1, k60).`);
    writeFileSync(join(dir, 'hostile.log'), lines.join('\n'));
    const r = await replay([join(dir, 'hostile.log')]);
    t.same(pairs(r.alerts), ['auth-brute-force | ip 10.0.0.7'], 'the 10 refusals around the hostile lines still alert');
    t.ok(
      r.stats.notes.some((n) => /skipped 1 line\(s\) with control characters \(lines 4\)/.test(n)),
      'control characters named',
    );
    t.ok(
      r.stats.notes.some((n) => /skipped 1 line\(s\) longer than 65536 bytes \(lines 6\)/.test(n)),
      'the 1 MB line named',
    );
    t.ok(
      r.stats.notes.some((n) => /skipped 1 line\(s\) dated more than a day in the future \(lines 8\)/.test(n)),
      'the future line named',
    );

    const bin = join(dir, 'mosquitto.db');
    writeFileSync(bin, Buffer.from([0x00, 0xb5, 0x4d, 0x6f, 0x73, 0x00, 0x01, 0xff]));
    await t.rejects(replay([bin]), /mosquitto\.db: not a text log \(binary content at byte 0\)/, 'a binary file: a clear error');
    await t.rejects(replay([join(dir, 'missing.log')]), /missing\.log: ENOENT/, 'a missing file: a clear error');
  },
);

t.test('mqprobe detect --replay on Mosquitto logs: alerts on stdout, notes on stderr, exit 1 for a binary file', async (t) => {
  const dir = tempDir();
  const t0 = Math.floor(Date.now() / 1000) - 600;
  writeFileSync(join(dir, 'mosquitto.log'), refusals(10, '10.0.0.7', t0).join('\n'));
  writeFileSync(join(dir, 'mosquitto.db'), Buffer.from([0x00, 0xb5, 0x4d]));
  const ok = spawnCli(t, ['detect', '--replay', join(dir, 'mosquitto.log')]);
  t.equal(await ok.exited, 0);
  t.match(ok.output(), /"rule":\{"name":"auth-brute-force"/, 'the alert');
  t.match(ok.output(), /mqprobe detect: 20 log lines, 10 events, 1 alerts/);
  t.match(ok.output(), /mqprobe detect: no subscribe lines: log_type subscribe is off/);
  const bad = spawnCli(t, ['detect', '--replay', join(dir, 'mosquitto.log'), join(dir, 'mosquitto.db')]);
  t.equal(await bad.exited, 1, 'a binary file among the logs: exit 1');
  t.match(bad.output(), /mqprobe detect: .*mosquitto\.db: not a text log \(binary content at byte 0\)/);
});
