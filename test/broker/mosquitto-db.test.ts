import t, { type Test } from 'tap';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BrokerProcess } from '../helpers/broker.js';
import { connectClient, connectCollecting, collect, until } from '../helpers/mqtt.js';
import { persistenceFiles } from '../../broker/persistence/mosquitto-db/import.js';
import {
  RETAINED,
  SLEEPER_QUEUE,
  makeState,
  sha256File,
  startMqprobe,
  startPersistentMosquitto,
  writableDir,
} from '../helpers/mosquitto-db.js';

async function stopGracefully(p: BrokerProcess) {
  p.child.kill('SIGTERM');
  return p.exited;
}

/** What a broker answers `sleeper` (clean=false), its other subscriptions and a reader of retained/#. */
async function observe(t: Test, url: string) {
  const { client: sleeper, got: queued } = await connectCollecting(t, url, { clientId: 'sleeper', clean: false });
  await until(() => queued.length >= SLEEPER_QUEUE.length, 10_000, 'the queued messages');
  const reader = await connectClient(t, url, { clientId: 'reader' });
  const retained = collect(reader);
  await reader.subscribeAsync('retained/#');
  await until(() => retained.length === 2, 5000, 'the retained messages');
  // the session's other subscriptions are intact: live publishes on them arrive
  await reader.publishAsync('other/a/x', 'live', { qos: 1 });
  await reader.publishAsync('alerts', 'live0', { qos: 0 });
  await until(() => queued.length === SLEEPER_QUEUE.length + 2, 5000, 'the live messages');
  const { got: queued2 } = await connectCollecting(t, url, { clientId: 'sleeper2', clean: false });
  await until(() => queued2.length === 1, 5000, "sleeper2's queued message");
  await sleeper.endAsync();
  return {
    queued: queued.map((m) => ({ topic: m.topic, payload: m.payload.toString(), qos: m.qos })),
    retained: Object.fromEntries(retained.map((m) => [m.topic, m.payload.toString()])),
    sleeper2: queued2.map((m) => m.payload.toString()),
  };
}

// mqtt.js hands a QoS 2 message over on PUBREL, usually after the QoS 1 ones sent behind it: content is
// compared sorted, order among the QoS 1 messages on its own
const byPayload = <T extends { queued: { payload: string }[] }>(o: T): T => ({
  ...o,
  queued: [...o.queued].sort((a, b) => a.payload.localeCompare(b.payload)),
});
const qos1Queued = (o: Awaited<ReturnType<typeof observe>>) =>
  o.queued.filter((m) => m.topic.startsWith('queue/') && m.qos === 1).map((m) => m.payload);
const expected = byPayload({
  queued: [...SLEEPER_QUEUE, { topic: 'other/a/x', payload: 'live', qos: 1 }, { topic: 'alerts', payload: 'live0', qos: 0 }],
  retained: RETAINED,
  sleeper2: ['only-for-2'],
});

t.test('a mosquitto.db written by Mosquitto 2.0.11 is imported once, never written, and Mosquitto starts again from it', async (t) => {
  const dir = writableDir(t);
  const db = join(dir, 'mosquitto.db');
  const mosq = await startPersistentMosquitto(t, dir);
  await makeState(t, mosq.url);
  await mosq.stop('SIGTERM');
  const written = sha256File(db);

  const first = await startMqprobe(t, dir);
  await until(() => /imported Mosquitto persistence file/.test(first.output()), 10_000, 'the import log line');
  t.match(first.output(), /2 retained messages, 2 sessions, 4 queued messages/, 'the import says what it took');
  const fromMqprobe = await observe(t, first.url);
  t.same(byPayload(fromMqprobe), expected, 'mqprobe serves the retained messages, the queued QoS 1/2 messages and the subscriptions');
  t.same(qos1Queued(fromMqprobe), ['m1', 'm3'], 'queued QoS 1 messages in the order Mosquitto queued them');
  t.equal(await stopGracefully(first), 0, 'mqprobe stops cleanly');
  t.equal(sha256File(db), written, 'mosquitto.db is byte-identical after mqprobe ran');
  const snapshot = JSON.parse(readFileSync(`${db}.mqprobe.json`, 'utf8'));
  t.equal(snapshot.mosquittoDb.sha256, written, "mqprobe's own snapshot, beside it, records the import");

  const second = await startMqprobe(t, dir);
  await until(() => /was imported on .*; not imported again/.test(second.output()), 10_000, 'the already-imported line');
  const { got: again } = await connectCollecting(t, second.url, { clientId: 'sleeper', clean: false });
  await new Promise((r) => setTimeout(r, 1000));
  t.same(again, [], 'a restart does not import again: nothing is delivered twice');
  t.equal(await stopGracefully(second), 0);
  t.equal(sha256File(db), written, 'still byte-identical after the second run');

  // Mosquitto loads the same file and answers the same: it never saw mqprobe's deliveries
  await mosq.start();
  const fromMosquitto = await observe(t, mosq.url);
  t.same(byPayload(fromMosquitto), byPayload(fromMqprobe), 'Mosquitto 2.0.11 starts again from the file and answers as mqprobe did');
  t.same(qos1Queued(fromMosquitto), ['m1', 'm3'], 'in the same order');
  t.notMatch(mosq.output(), /Error/, 'Mosquitto reports no error loading it');

  // Mosquitto ran again and rewrote its file: mqprobe says so and does not import it a second time
  await mosq.stop('SIGTERM');
  t.not(sha256File(db), written, 'Mosquitto rewrote its file');
  const third = await startMqprobe(t, dir);
  await until(() => /changed since it was imported on .*; not imported again/.test(third.output()), 10_000, 'the changed-file warning');
  t.match(third.output(), /remove .*mosquitto\.db\.mqprobe\.json/, 'the warning says how to import it');
});

t.test('with persistence_file mosquitto.db and no such file, mqprobe keeps the name free for Mosquitto', async (t) => {
  const dir = writableDir(t);
  const p = await startMqprobe(t, dir);
  const c = await connectClient(t, p.url);
  await c.publishAsync('retained/own', 'x', { qos: 1, retain: true });
  await c.endAsync();
  t.equal(await stopGracefully(p), 0);
  t.notOk(existsSync(join(dir, 'mosquitto.db')), 'mosquitto.db was not created');
  t.ok(existsSync(join(dir, 'mosquitto.db.mqprobe.json')), 'the snapshot is mosquitto.db.mqprobe.json');
  const mosq = await startPersistentMosquitto(t, dir);
  t.notMatch(mosq.output(), /Error/, 'Mosquitto starts on the same folder without an error');
});

t.test("which file is the snapshot and which is Mosquitto's, by name and first bytes (docs/persistence.md)", async (t) => {
  const dir = writableDir(t);
  const mosquittoHead = Buffer.from([0x00, 0xb5, 0x00, ...Buffer.from('mosquitto db')]);
  const cases: [string, string | Buffer | undefined, { snapshot: string; mosquittoDb?: string }][] = [
    ['mqprobe.db', undefined, { snapshot: 'mqprobe.db' }],
    ['mqprobe.db', '{"format":"mqprobe-snapshot"', { snapshot: 'mqprobe.db' }],
    ['mqprobe.db', mosquittoHead, { snapshot: 'mqprobe.db.mqprobe.json', mosquittoDb: 'mqprobe.db' }],
    ['mosquitto.db', undefined, { snapshot: 'mosquitto.db.mqprobe.json' }],
    ['mosquitto.db', mosquittoHead, { snapshot: 'mosquitto.db.mqprobe.json', mosquittoDb: 'mosquitto.db' }],
    ['state.db', '  {"format":"mqprobe-snapshot","version":1}', { snapshot: 'state.db' }],
    ['state.db', 'garbage', { snapshot: 'state.db.mqprobe.json', mosquittoDb: 'state.db' }],
    ['state.db', '', { snapshot: 'state.db.mqprobe.json', mosquittoDb: 'state.db' }],
  ];
  for (const [i, [name, content, want]] of cases.entries()) {
    const sub = join(dir, String(i));
    mkdirSync(sub);
    if (content !== undefined) writeFileSync(join(sub, name), content);
    const got = persistenceFiles(sub, name);
    t.same(
      got,
      { snapshot: join(sub, want.snapshot), ...(want.mosquittoDb ? { mosquittoDb: join(sub, want.mosquittoDb) } : {}) },
      `${name} holding ${content === undefined ? 'nothing' : JSON.stringify(String(content).slice(0, 12))}`,
    );
  }
});

t.test('an unreadable persistence_file (here a directory) is not taken for a snapshot; the import says why', async (t) => {
  const dir = writableDir(t);
  mkdirSync(join(dir, 'mosquitto.db'));
  const p = await startMqprobe(t, dir);
  await until(() => /cannot import Mosquitto persistence file: EISDIR.*left as it is/.test(p.output()), 10_000, 'the error line');
  t.equal(await stopGracefully(p), 0, 'mqprobe ran and stopped cleanly');
  t.ok(existsSync(join(dir, 'mosquitto.db.mqprobe.json')), 'its snapshot went beside it');
});
