import t from 'tap';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CaptureEvent, PublishNotice } from '../../capture/index.js';
import { observe, type Observation } from '../../detect/observation.js';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { securityConf } from './session.js';

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
  const notices: PublishNotice[] = [];
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
  const notices: PublishNotice[] = [];
  let thrown = 0;
  b.broker.capture.subscribe(
    () => undefined,
    (n) => {
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
