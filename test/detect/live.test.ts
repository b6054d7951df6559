import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { connectClient, collect, until } from '../helpers/mqtt.js';
import { fixture, repoRoot } from '../helpers/paths.js';
import type { AlertEvent } from '../../detect/index.js';

const run = promisify(execFile);

/** One CONNECT with a wrong password; resolves when the broker has refused it. */
async function guess(url: string, password: string): Promise<void> {
  const c = mqtt.connect(url, { clientId: 'guesser', username: 'alice', password, reconnectPeriod: 0, connectTimeout: 5000 });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => reject(new Error('a wrong password was accepted')));
    c.once('error', () => resolve());
    c.once('close', () => resolve());
  });
  c.end(true);
}

const key = (a: AlertEvent) => `${a.rule.name} ${a.mqprobe.detect.entity} ${JSON.stringify(a.mqprobe.detect.evidence.sequences)}`;

t.test(
  'live: password guessing, a # subscriber and a flood raise their alerts on $SYS/broker/alerts/…; normal clients none; replay gives the same',
  async (t) => {
    const captureFile = join(tempDir(), 'capture.ndjson');
    const { mqttUrl, broker, dir } = await startTestBroker(
      t,
      `listener 0 127.0.0.1\nallow_anonymous false\npassword_file ${fixture('mosquitto', 'passwd')}\ncapture_sink file ${captureFile}\n`,
      { dir: dirname(captureFile) },
    );
    const watcher = await connectClient(t, mqttUrl, { clientId: 'soc', username: 'alice', password: 'alice-secret' });
    const alerts = collect(watcher);
    await watcher.subscribeAsync('$SYS/broker/alerts/#', { qos: 0 });
    const got = () => alerts.map((m) => JSON.parse(m.payload.toString()) as AlertEvent);
    const has = (rule: string, client?: string) =>
      got().some((a) => a.rule.name === rule && (client === undefined || a.mqtt?.client_id === client));

    // normal clients: a subscriber and periodic telemetry
    const dash = await connectClient(t, mqttUrl, { clientId: 'dashboard', username: 'bob', password: 'b0b pass with spaces' });
    await dash.subscribeAsync('plant/+/temp', { qos: 1 });
    const sensor = await connectClient(t, mqttUrl, { clientId: 'sensor-01', username: 'sensor-01', password: 'Tr1cky:$pass/word' });
    for (let i = 0; i < 5; i++) await sensor.publishAsync('plant/line1/temp', `{"t":${20 + i}}`, { qos: 1 });

    // the password guesser
    for (let i = 0; i < 12; i++) await guess(mqttUrl, `guess-${i}`);
    await until(() => has('auth-brute-force'), 5000, 'the brute-force alert');

    // the # subscriber
    const snoop = await connectClient(t, mqttUrl, { clientId: 'snoop', username: 'bob', password: 'b0b pass with spaces' });
    await snoop.subscribeAsync('#', { qos: 0 });
    await until(() => has('wildcard-subscription', 'snoop'), 5000, 'the wildcard-subscription alert');

    // the flood
    const flood = await connectClient(t, mqttUrl, { clientId: 'flooder', username: 'sensor-01', password: 'Tr1cky:$pass/word' });
    for (let i = 0; i < 400; i++) flood.publish('plant/line1/temp', 'x', { qos: 0 });
    await until(() => has('publish-rate', 'flooder'), 5000, 'the publish-rate alert');

    for (let i = 0; i < 5; i++) await sensor.publishAsync('plant/line1/temp', `{"t":${30 + i}}`, { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    const live = got();
    const brute = live.find((a) => a.rule.name === 'auth-brute-force')!;
    t.equal(brute.source?.ip, '127.0.0.1');
    t.equal(brute.user?.name, 'alice');
    t.equal(brute.event.kind, 'alert');
    t.ok(
      Number((brute.event as Record<string, unknown>).sequence) > 0,
      'the published alert is the recorded capture event (numbered by capture)',
    );
    t.same(
      alerts.map((m) => m.topic).filter((x) => !x.startsWith('$SYS/broker/alerts/')),
      [],
      'only alert topics',
    );
    t.ok(
      alerts.some((m) => m.topic === '$SYS/broker/alerts/auth-brute-force'),
      'published per rule',
    );
    t.same(
      new Set(live.map((a) => a.rule.name)),
      new Set(['auth-brute-force', 'wildcard-subscription', 'publish-rate', 'topic-rate']),
      'exactly these rules fired',
    );
    for (const a of live)
      t.notOk(['soc', 'dashboard', 'sensor-01'].includes(a.mqtt?.client_id ?? ''), `${a.rule.name} is not about a normal client`);
    const text = readFileSync(join(dir, 'broker.log'), 'utf8');
    t.notOk(/guess-\d/.test(text), 'no guessed password in the log');

    await broker.close();
    const recorded = readFileSync(captureFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as AlertEvent);
    const liveRaised = recorded.filter((e) => e.event.kind === 'alert' && e.event.action === 'alert-raised');
    t.same(
      liveRaised.map(key).sort(),
      live
        .filter((a) => a.event.action === 'alert-raised')
        .map(key)
        .sort(),
      'every published alert is in the capture file too',
    );
    t.notOk(readFileSync(captureFile, 'utf8').includes('guess-'), 'no guessed password in the capture');

    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', join(repoRoot, 'app', 'cli.ts'), 'detect', '--replay', captureFile],
      { cwd: repoRoot },
    );
    const replayed = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as AlertEvent);
    t.same(
      replayed
        .filter((a) => a.event.action === 'alert-raised')
        .map(key)
        .sort(),
      liveRaised.map(key).sort(),
      'replay raises the same alerts for the same entities and evidence',
    );
  },
);

t.test('replay: stdin, malformed lines counted, a bad detect_rule exits 3 naming file and line', async (t) => {
  const conf = join(tempDir(), 'bad.conf');
  writeFileSync(conf, 'detect_rule auth-brute-force threshold lots\n');
  const cli = ['--import', 'tsx', join(repoRoot, 'app', 'cli.ts'), 'detect'];
  const err = await run(process.execPath, [...cli, '--replay', '-', '-c', conf], { cwd: repoRoot }).catch(
    (e: { code: number; stderr: string }) => e,
  );
  t.equal((err as { code: number }).code, 3);
  t.match((err as { stderr: string }).stderr, /bad\.conf:1: detect_rule auth-brute-force threshold: expected an integer/);

  const lines = [
    '{"@timestamp":"2026-03-02T10:00:00Z","event":{"action":"subscription-granted","sequence":1},"mqtt":{"client_id":"s","subscriptions":[{"topic":"#","qos":0,"granted_qos":0}]}}',
    'garbage',
    '[1]',
    '',
  ];
  const child = execFile(process.execPath, [...cli, '--replay', '-'], { cwd: repoRoot });
  let out = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  child.stdin!.end(lines.join('\n'));
  const code = await new Promise((r) => child.on('close', r));
  t.equal(code, 0);
  t.equal((JSON.parse(out.trim()) as AlertEvent).rule.name, 'wildcard-subscription');
  t.match(stderr, /skipped 2 of 3 lines that are not capture events \(lines 2, 3\)/);
});
