import t from 'tap';
import { startTestBroker } from '../helpers/broker.js';
import { startRedis } from '../helpers/redis.js';
import { connectClient, collect, until } from '../helpers/mqtt.js';

const conf = (url: string) => `listener 0 127.0.0.1\nallow_anonymous true\npersistence_redis_url ${url}\n`;

t.test('two mqprobe processes on one Redis act as one broker', async (t) => {
  const redis = await startRedis(t);
  const a = await startTestBroker(t, conf(redis.url));
  const b = await startTestBroker(t, conf(redis.url));

  const sub = await connectClient(t, a.mqttUrl, { clientId: 'sub-on-a' });
  const got = collect(sub);
  await sub.subscribeAsync('shared/#', { qos: 1 });
  await new Promise((r) => setTimeout(r, 300)); // the subscription propagates through Redis
  const pub = await connectClient(t, b.mqttUrl, { clientId: 'pub-on-b' });
  await pub.publishAsync('shared/x', 'from b', { qos: 1 });
  await until(() => got.length === 1, 10_000, 'cross-broker delivery');
  t.equal(got[0].payload.toString(), 'from b', 'a subscriber on A receives what a publisher on B sends');

  const session = await connectClient(t, a.mqttUrl, { clientId: 'roamer', clean: false });
  await session.subscribeAsync('roam/#', { qos: 1 });
  await session.endAsync();
  for (let i = 0; i < 3; i++) await pub.publishAsync('roam/x', `q${i}`, { qos: 1 });
  const resumed = await connectClient(t, b.mqttUrl, { clientId: 'roamer', clean: false });
  const queued = collect(resumed);
  await until(() => queued.length === 3, 10_000, 'queued messages on the other broker');
  t.same(queued.map((m) => m.payload.toString()), ['q0', 'q1', 'q2'], 'a persistent session created on A resumes on B with its queued QoS 1 messages');
});

t.test('Redis going away and coming back does not crash the broker', async (t) => {
  const redis = await startRedis(t);
  const a = await startTestBroker(t, conf(redis.url));
  await redis.stop();
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(a.broker.aedes.closed, false, 'still running while Redis is down');
  await redis.start();
  const sub = await connectClient(t, a.mqttUrl, { clientId: 'after-outage' });
  const got = collect(sub);
  await sub.subscribeAsync('back/#', { qos: 1 });
  const pub = await connectClient(t, a.mqttUrl, { clientId: 'pub-after-outage' });
  await pub.publishAsync('back/x', 'works', { qos: 1 });
  await until(() => got.length === 1, 15_000, 'delivery after Redis came back');
  t.equal(got[0].payload.toString(), 'works');
});
