import t from 'tap';
import { startTestBroker } from '../helpers/broker.js';
import { startRedis } from '../helpers/redis.js';
import { connectClient, connectCollecting, until } from '../helpers/mqtt.js';
import { WireClient } from '../engine/wire.js';

// one Redis and one broker for the file
const redis = await startRedis(t);
const { mqttUrl, port } = await startTestBroker(t, `listener 0 127.0.0.1\nallow_anonymous true\npersistence_redis_url ${redis.url}\n`);

/**
 * With Redis state a message reaches this process's live subscribers only when the stream reader
 * reads it back; a persistent session that resumes before that has the message in its queue. Here the
 * reader is put behind by a burst of QoS 0 messages nobody subscribes to, then a QoS 1 message is
 * queued for the offline session, which resumes as soon as the publisher has its PUBACK.
 */
t.test('a queued QoS 1 message is delivered once to a session resuming while the stream reader is behind (Redis state)', async (t) => {
  const sub = await connectClient(t, mqttUrl, { clientId: 'resumer', clean: false });
  await sub.subscribeAsync('resume/#', { qos: 1 });
  await sub.endAsync();
  const pub = await connectClient(t, mqttUrl, { clientId: 'resume-pub' });
  const counts: number[] = [];
  for (let i = 0; i < 3; i++) {
    const burst = Array.from({ length: 5000 }, (_, k) => pub.publishAsync('burst/x', `b${k}`, { qos: 0 }));
    await pub.publishAsync('resume/x', `m${i}`, { qos: 1 });
    await Promise.all(burst);
    const { client, got } = await connectCollecting(t, mqttUrl, { clientId: 'resumer', clean: false });
    await until(() => got.length > 0, 10_000, `message ${i}`);
    // the live copy, if any, comes once the reader has caught up: a marker published now arrives after it
    await pub.publishAsync('resume/marker', `k${i}`, { qos: 1 });
    await until(() => got.some((m) => m.payload.toString() === `k${i}`), 30_000, `marker ${i}`);
    counts.push(got.filter((m) => m.payload.toString() === `m${i}`).length);
    await client.endAsync();
  }
  t.same(counts, [1, 1, 1], 'each queued message arrived exactly once');
});

t.test('a QoS 2 packet id reused after a clean reconnect is a new message (GHSA-p8r9-qf8w-p73r, Redis state)', async (t) => {
  const sub = await connectClient(t, mqttUrl, { clientId: 'q2c-sub' });
  const got: string[] = [];
  sub.on('message', (_topic, payload) => got.push(payload.toString()));
  await sub.subscribeAsync('q2c', { qos: 0 });
  const send = async (payload: string, release: boolean) => {
    const { c } = await WireClient.connect(port, { clientId: 'q2c', clean: true }, 4);
    c.send({ cmd: 'publish', topic: 'q2c', payload: Buffer.from(payload), qos: 2, messageId: 7, retain: false, dup: false });
    await c.next('pubrec');
    if (release) {
      c.send({ cmd: 'pubrel', messageId: 7 });
      t.equal((await c.next('pubcomp'))?.cmd, 'pubcomp', `${payload}: released`);
    }
    c.end();
    await c.closedWithin();
  };
  await send('first', false);
  await send('second', true);
  await until(() => got.length >= 2, 10_000, 'both messages');
  t.same(got, ['first', 'second'], 'the subscriber got both messages');
});
