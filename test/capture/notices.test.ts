import t from 'tap';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CaptureEvent, Notice } from '../../capture/index.js';
import { observe, WATCHED_ACTIONS, type Observation } from '../../detect/observation.js';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { scriptedSession, securityConf } from './session.js';

/** The facts detection reads, without the two that differ between two publishes (time and sequence). */
const facts = (o: Omit<Observation, 'time' | 'seq'>) => ({
  action: o.action,
  ip: o.ip,
  user: o.user,
  clientId: o.clientId,
  topic: o.topic,
  payloadSize: o.payloadSize,
  payload: o.payload,
  payloadEncoding: o.payloadEncoding,
});

const PUBLISHES: [string, Buffer][] = [
  ['sensors/t1', Buffer.from('héllo')],
  ['sensors/bin', Buffer.from([0xff, 0x00, 0x01])],
  ['sensors/empty', Buffer.alloc(0)],
];

t.test('a publish as a notice carries what the observation of its event holds; the file sink still gets every line', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'events.ndjson');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\n${securityConf(dir)}capture_sink file ${out}\ncapture_payload full\ndetect off\n`,
    { dir },
  );
  const alice = await connectClient(t, b.mqttUrl, { clientId: 'alice-n', username: 'alice', password: 'alice-secret' });
  const publishAll = async () => {
    for (const [topic, payload] of PUBLISHES) await alice.publishAsync(topic, payload, { qos: 1 });
  };

  // a listener that takes no notices: every publish is an event object
  const events: CaptureEvent[] = [];
  const off = b.broker.capture.subscribe((e) => {
    if (e.event.action === 'publish-received') events.push(e);
  });
  await publishAll();
  await until(() => events.length === PUBLISHES.length, 10_000, 'the publish events');
  off();

  // every listener takes notices: publishes come as notices, other events still as events
  const notices: Notice[] = [];
  const others: string[] = [];
  b.broker.capture.subscribe(
    (e) => others.push(e.event.action),
    (n) => notices.push(n),
  );
  await publishAll();
  await until(() => notices.length === PUBLISHES.length, 10_000, 'the publish notices');
  t.notOk(others.includes('publish-received'), 'no publish-received reaches the listener as an event');

  PUBLISHES.forEach(([topic], i) => {
    const o = observe(events[i])!;
    t.same(facts(notices[i]), facts(o), `${topic}: the notice's facts are the event's observation`);
    t.ok(notices[i].seq > events[events.length - 1].event.sequence, `${topic}: numbered after the events`);
    t.equal(notices[i].raw, undefined, `${topic}: the raw payload is let go at the flush`);
  });
  t.equal(notices[1].payloadEncoding, 'base64', 'binary payload in base64 as the event has it');
  t.equal(notices[0].ip, '127.0.0.1');

  // the capture thread got the facts of every publish of both phases: no loss through notices
  const seqs = [...events.map((e) => e.event.sequence), ...notices.map((n) => n.seq)];
  const written = () =>
    existsSync(out)
      ? readFileSync(out, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as CaptureEvent)
          .filter((e) => e.event.action === 'publish-received')
      : [];
  await until(() => written().length === seqs.length, 10_000, 'every publish in the file');
  t.same(
    written().map((e) => e.event.sequence),
    seqs,
    'the file has a line for each publish, in order',
  );
  t.same(written()[3].mqtt?.payload, 'héllo', "a notice's publish keeps its payload in the file");
});

t.test('no sink: notices alone (no event objects); a listener that throws is counted and the broker goes on', async (t) => {
  const b = await startTestBroker(t, 'listener 0 127.0.0.1\nallow_anonymous true\ndetect off\n');
  const notices: Notice[] = [];
  let thrown = 0;
  b.broker.capture.subscribe(
    () => undefined,
    (n) => {
      // the connection's events come as notices too (no sink): only the publishes are looked at here
      if (n.action !== 'publish-received') return;
      notices.push(n);
      if (n.topic === 'boom') throw new Error(`listener failure ${++thrown}`);
    },
  );
  const c = await connectClient(t, b.mqttUrl, { clientId: 'anon-n' });
  await c.publishAsync('boom', 'x', { qos: 1 });
  await c.publishAsync('a/b', 'yz', { qos: 1 });
  await until(() => notices.length === 2, 10_000, 'both notices');
  t.same(
    notices.map((n) => [n.topic, n.clientId, n.user, n.payloadSize, n.payload]),
    [
      ['boom', 'anon-n', undefined, 1, undefined],
      ['a/b', 'anon-n', undefined, 2, undefined],
    ],
    'capture_payload off: no payload in the notice',
  );
  t.equal(b.broker.capture.stats().listenerErrors, 1, 'the failure is counted');
  t.ok(notices[1].seq === notices[0].seq + 1, 'numbered in order');
});

/** Every fact detection reads of an event (its observation), but time and sequence. */
const allFacts = (o: Omit<Observation, 'time' | 'seq'>) => ({
  ...facts(o),
  reason: o.reason,
  reasonCode: o.reasonCode,
  subscriptions: o.subscriptions,
});

t.test('no sink: the per-client events come as notices holding what the observation of each event holds', async (t) => {
  // the same scripted session on two brokers at once: one with a listener of events, one with a listener of notices
  const start = async () => {
    const dir = tempDir();
    return startTestBroker(t, `listener 0 127.0.0.1\n${securityConf(dir)}detect off\n`, { dir });
  };
  const [withEvents, withNotices] = await Promise.all([start(), start()]);
  const events: CaptureEvent[] = [];
  withEvents.broker.capture.subscribe((e) => events.push(e));
  const notices: Notice[] = [];
  const asEvents: CaptureEvent[] = [];
  withNotices.broker.capture.subscribe(
    (e) => asEvents.push(e),
    (n) => notices.push(n),
  );
  await Promise.all([withEvents, withNotices].map((b) => scriptedSession(t, b.mqttUrl, b.port)));
  // an MQTT 5 publish with properties: a notice all the same when no sink needs its line
  for (const b of [withEvents, withNotices]) {
    const c = await connectClient(t, b.mqttUrl, { clientId: 'alice-5', username: 'alice', password: 'alice-secret', protocolVersion: 5 });
    await c.publishAsync('sensors/v5', 'with properties', {
      qos: 1,
      properties: { contentType: 'text/plain', userProperties: { k: 'v' } },
    });
  }
  const sleepyGone = (ids: (string | undefined)[]) => ids.includes('sleepy');
  await until(
    () =>
      sleepyGone(events.filter((e) => e.event.action === 'client-disconnected').map((e) => e.mqtt?.client_id)) &&
      sleepyGone(notices.filter((n) => n.action === 'client-disconnected').map((n) => n.clientId)) &&
      events.some((e) => e.mqtt?.topic === 'sensors/v5') &&
      notices.some((n) => n.topic === 'sensors/v5'),
    15_000,
    'the last disconnect and the MQTT 5 publish on both brokers',
  );

  // the order of two clients' events may differ between the brokers: compared as sorted lists
  const sorted = (xs: unknown[]) => xs.map((x) => JSON.stringify(x)).sort();
  const observed = events.map((e) => observe(e)!);
  const watched = (o: { action: string }) => WATCHED_ACTIONS.has(o.action);
  const noticed = [...notices, ...asEvents.map((e) => observe(e)!)];
  t.same(
    sorted(noticed.filter(watched).map(allFacts)),
    sorted(observed.filter(watched).map(allFacts)),
    'each watched event has a notice with the same facts',
  );
  t.same(
    sorted(noticed.map((o) => o.action)),
    sorted(observed.map((o) => o.action)),
    'one notice or event for each event of the other broker, action by action',
  );
  const actions = new Set(notices.map((n) => n.action));
  for (const a of [
    'connection-opened',
    'client-connected',
    'connection-refused',
    'subscription-granted',
    'subscription-denied',
    'publish-denied',
    'unsubscribed',
    'client-disconnected',
    'publish-received',
  ])
    t.ok(actions.has(a), `${a} comes as a notice`);
  t.notOk(
    asEvents.some((e) => actions.has(e.event.action)),
    'no event object of an action that came as a notice',
  );
  const denied = notices.find((n) => n.action === 'subscription-denied')!;
  t.same(denied.subscriptions, [{ filter: 'secret/#', denied: true, code: 128 }], 'a denied subscription with its SUBACK code');
  const seqs = [...notices.map((n) => n.seq), ...asEvents.map((e) => e.event.sequence)].sort((a, b) => a - b);
  t.same(
    seqs,
    seqs.map((_, i) => i + 1),
    'notices and events share one sequence, without a gap',
  );
});
