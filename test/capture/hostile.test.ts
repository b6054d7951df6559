/** Hostile input through capture: huge and binary payloads, control characters in client ids and topics, malformed packets. */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqttPacket from 'mqtt-packet';
import { startTestBroker, tempDir, type Teardown } from '../helpers/broker.js';
import { connectClient, until } from '../helpers/mqtt.js';
import { WireClient } from '../engine/wire.js';
import { packet, rawConnect, str } from '../conformance/wire-probes.js';
import { connectPacket, rawSession } from './session.js';

/** Every line of the capture file: one JSON object, no raw control character. None before the sink's first write creates it. */
function lines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
}

async function broker(t: Teardown, extra: string) {
  const dir = tempDir();
  const out = join(dir, 'capture.ndjson');
  const b = await startTestBroker(
    t,
    `listener 0 127.0.0.1\nallow_anonymous true\nmax_packet_size 1048576\ncapture_sink file ${out}\n${extra}`,
    { dir },
  );
  return { b, out };
}

t.test('huge and binary payloads under capture_payload full and truncate', async (t) => {
  for (const policy of ['full', 'truncate 7']) {
    const { b, out } = await broker(t, `capture_payload ${policy}\n`);
    const c = await connectClient(t, b.mqttUrl, { clientId: 'big' });
    const huge = Buffer.alloc(900_000, 'a');
    const binary = Buffer.from([0xff, 0xfe, 0x00, 0x0a, 0x0d, 0x22, 0x5c, 0x80]);
    const text = 'line1\nline2\r\n"quoted" \\ é😀';
    await c.publishAsync('p/huge', huge, { qos: 1 });
    await c.publishAsync('p/binary', binary, { qos: 1 });
    await c.publishAsync('p/text', text, { qos: 1 });
    await c.publishAsync('p/empty', Buffer.alloc(0), { qos: 1 });
    await c.endAsync();
    await b.broker.close();
    const events = lines(out).map((l) => JSON.parse(l));
    const pub = (topic: string) => events.find((e) => e.event.action === 'publish-received' && e.mqtt.topic === topic);
    t.same(
      events.map((e) => e.event.sequence),
      events.map((_, i) => i + 1),
      `${policy}: contiguous`,
    );
    if (policy === 'full') {
      t.match(pub('p/huge').mqtt, { payload_size: 900_000, payload_encoding: 'utf8' });
      t.equal(pub('p/huge').mqtt.payload.length, 900_000, 'the whole huge payload');
      t.match(pub('p/binary').mqtt, { payload: binary.toString('base64'), payload_encoding: 'base64', payload_size: 8 });
      t.match(pub('p/text').mqtt, { payload: text, payload_encoding: 'utf8' });
      t.notOk('payload_truncated' in pub('p/text').mqtt);
    } else {
      t.match(pub('p/huge').mqtt, { payload: 'aaaaaaa', payload_truncated: true, payload_size: 900_000 });
      t.match(pub('p/binary').mqtt, {
        payload: binary.subarray(0, 7).toString('base64'),
        payload_encoding: 'base64',
        payload_truncated: true,
      });
      t.match(pub('p/text').mqtt, { payload: 'line1\nl', payload_encoding: 'utf8', payload_truncated: true });
    }
    t.match(pub('p/empty').mqtt, { payload: '', payload_size: 0 });
  }
});

t.test('a truncation inside a UTF-8 character keeps the text up to the character', async (t) => {
  const { b, out } = await broker(t, 'capture_payload truncate 6\n');
  const c = await connectClient(t, b.mqttUrl, { clientId: 'utf' });
  await c.publishAsync('p/u', 'abcde😀xyz', { qos: 1 });
  await c.endAsync();
  await b.broker.close();
  const e = lines(out)
    .map((l) => JSON.parse(l))
    .find((x) => x.event.action === 'publish-received');
  t.match(e.mqtt, { payload: 'abcde', payload_encoding: 'utf8', payload_truncated: true });
});

t.test('client ids and topics with control characters stay inside one escaped JSON line', async (t) => {
  const { b, out } = await broker(t, '');
  // (U+0000 never gets this far: the parser closes the connection, test/broker/fuzz.test.ts)
  const evil = 'ev\nil\r\u0001\u001b[31m\u2028"}';
  // refused (CONNACK 2, test/broker/reserved-topics.test.ts), but its refusal is captured with the id
  await t.rejects(connectClient(t, b.mqttUrl, { clientId: evil }), { code: 2 }, 'a client id with control characters is refused');
  const c = await connectClient(t, b.mqttUrl, { clientId: 'ctl-topics' });
  await c.publishAsync('t/\u0001\u007f\n"x"', 'v', { qos: 1 });
  await c.subscribeAsync('s/\t/+/#');
  await c.endAsync();
  // a PUBLISH whose topic is not UTF-8
  const badTopic = Buffer.concat([connectPacket('raw-bin'), Buffer.from([0x30, 0x06, 0x00, 0x02, 0xc3, 0x28, 0x68, 0x69])]);
  await rawSession(b.port, [badTopic], 500);
  await b.broker.close();
  const raw = lines(out);
  for (const l of raw) t.notMatch(l, /[\u0000-\u001f]/, 'no raw control character in a line');
  const events = raw.map((l) => JSON.parse(l));
  t.same(
    events.map((e) => e.event.sequence),
    events.map((_, i) => i + 1),
    'contiguous',
  );
  const refused = events.find((e) => e.event.action === 'connection-refused');
  t.equal(refused.mqtt.client_id, evil, 'the client id survives exactly');
  t.ok(
    events.some((e) => e.event.action === 'publish-received' && e.mqtt.topic === 't/\u0001\u007f\n"x"'),
    'the topic survives exactly',
  );
  t.ok(
    events.some((e) => e.event.action === 'protocol-error' && /MQTT-1\.5\.3-1/.test(e.error?.message)),
    'the non-UTF-8 topic closes its connection, captured as a protocol error naming the rule',
  );
});

t.test('malformed and oversized packets become protocol-error events, the broker keeps serving', async (t) => {
  const { b, out } = await broker(t, '');
  // reserved packet type 0; a remaining length of 5 bytes (invalid varint); a PUBLISH larger than max_packet_size
  await rawSession(b.port, [Buffer.from([0x00, 0x00])], 1000);
  await rawSession(b.port, [connectPacket('bad-len'), Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f])], 1000);
  const oversize = mqttPacket.generate({
    cmd: 'publish',
    topic: 'x',
    payload: Buffer.alloc(2_000_000),
    qos: 0,
    retain: false,
    dup: false,
  } as mqttPacket.IPublishPacket);
  await rawSession(b.port, [connectPacket('too-big'), oversize], 1000);
  await rawSession(b.port, [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')], 1000);
  const c = await connectClient(t, b.mqttUrl, { clientId: 'after' });
  await c.publishAsync('still/works', 'ok', { qos: 1 });
  await c.endAsync();
  await until(() => lines(out).some((l) => l.includes('still/works')), 5000, 'the later publish');
  await b.broker.close();
  const events = lines(out).map((l) => JSON.parse(l));
  const errors = events.filter((e) => e.event.action === 'protocol-error');
  t.ok(errors.length >= 3, `protocol-error events (${errors.length})`);
  for (const e of errors)
    t.match(e, { event: { outcome: 'failure', category: ['network'] }, error: { message: String }, source: { ip: '127.0.0.1' } });
  t.ok(
    errors.some((e) => /max_packet_size/.test(e.error.message)),
    'the oversized packet is named',
  );
  t.ok(
    errors.some((e) => /variable byte integer/i.test(e.error.message)),
    'the bad remaining length is named',
  );
  t.same(
    events.map((e) => e.event.sequence),
    events.map((_, i) => i + 1),
    'contiguous',
  );
});

t.test(
  'rules mqtt-packet leaves unchecked (broker/engine/packet-rules.ts): protocol-error events naming the rule, no password kept',
  async (t) => {
    const { b, out } = await broker(t, '');
    const password = 'Sekr3t-pw-without-user';
    await rawSession(b.port, [rawConnect({ flags: 0x02 | 0x04 | 0x18, clientId: 'will-qos3', rest: [str('w/t'), str('x')] })], 1000);
    await rawSession(b.port, [rawConnect({ flags: 0x02 | 0x40, clientId: 'pw-only', rest: [str(password)] })], 1000);
    await rawSession(b.port, [connectPacket('unsub-empty'), packet(0xa2, [0, 1])], 1000);
    const level7 = await WireClient.open(b.port, 4);
    level7.raw(rawConnect({ level: 7, flags: 0x02, clientId: 'level-7' }));
    t.ok(await level7.closedWithin(3000), 'an unknown protocol level: closed');
    t.same(
      level7.received.map((p) => [p.cmd, p.returnCode]),
      [['connack', 1]],
      'after CONNACK 0x01 (unacceptable protocol version)',
    );
    const c = await connectClient(t, b.mqttUrl, { clientId: 'after' });
    await c.publishAsync('still/works', 'ok', { qos: 1 });
    await c.endAsync();
    await until(() => lines(out).some((l) => l.includes('still/works')), 5000, 'the later publish');
    await b.broker.close();
    const errors = lines(out)
      .map((l) => JSON.parse(l))
      .filter((e) => e.event.action === 'protocol-error')
      .map((e) => e.error.message as string);
    for (const rule of [
      /will QoS 3 \(MQTT-3\.1\.2-14/,
      /password without a user name \(MQTT-3\.1\.2-22\)/,
      /UNSUBSCRIBE without a topic filter \(MQTT-3\.10\.3-2\)/,
      /Invalid protocol version/,
    ])
      t.ok(
        errors.some((m) => rule.test(m)),
        `captured: ${rule.source}`,
      );
    t.notOk(readFileSync(out, 'utf8').includes(password), 'the password is in no capture event');
    t.notOk(readFileSync(b.logFile, 'utf8').includes(password), 'nor in the broker log');
  },
);
