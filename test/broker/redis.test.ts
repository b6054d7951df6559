import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, spawnCli, tempDir, waitForPort, type Teardown } from '../helpers/broker.js';
import { startRedis } from '../helpers/redis.js';
import { connectClient, connectCollecting, collect, until } from '../helpers/mqtt.js';

/** One mqprobe process (the real CLI) sharing its state through Redis. */
async function brokerProcess(t: Teardown, redisUrl: string) {
  const dir = tempDir();
  const port = await freePort();
  const conf = join(dir, 'mqprobe.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence_redis_url ${redisUrl}\nlog_dest stdout\n`);
  const proc = spawnCli(t, ['-c', conf]);
  await waitForPort(port);
  return { ...proc, mqttUrl: `mqtt://127.0.0.1:${port}` };
}

t.test('two mqprobe processes on one Redis act as one broker', async (t) => {
  const redis = await startRedis(t);
  const a = await brokerProcess(t, redis.url);
  const b = await brokerProcess(t, redis.url);

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
  // B must know the roamer's subscription (it crosses Redis as A's notice) before it can queue for it
  await new Promise((r) => setTimeout(r, 300));
  for (let i = 0; i < 3; i++) await pub.publishAsync('roam/x', `q${i}`, { qos: 1 });
  await new Promise((r) => setTimeout(r, 500)); // A's "client connected" takeover notice crosses Redis before B sees the client
  const { got: queued } = await connectCollecting(t, b.mqttUrl, { clientId: 'roamer', clean: false });
  // on a timeout the assertion below shows what did arrive
  await until(() => queued.length >= 3, 10_000, 'queued messages on the other broker').catch(() => undefined);
  if (queued.length !== 3) t.comment(`broker A:\n${a.output()}\nbroker B:\n${b.output()}`);
  t.same(
    queued.map((m) => m.payload.toString()),
    ['q0', 'q1', 'q2'],
    'a persistent session created on A resumes on B with its queued QoS 1 messages',
  );
});

t.test('Redis going away and coming back does not crash the broker, and the outage is logged once', async (t) => {
  const redis = await startRedis(t);
  const a = await brokerProcess(t, redis.url);
  await redis.stop();
  await new Promise((r) => setTimeout(r, 2500));
  t.equal(a.child.exitCode, null, 'still running while Redis is down');
  const outageLines = a
    .output()
    .split('\n')
    .filter((l) => l.includes('unavailable'));
  // one line at most per connection: state, messages-out, messages-in, share-changes
  t.ok(
    outageLines.length >= 1 && outageLines.length <= 4,
    `the outage is logged once per connection, not per retry (${outageLines.length} lines)`,
  );
  t.notMatch(a.output(), /Unhandled error event|uncaught/i, 'no unhandled Redis errors');
  await redis.start();
  await until(() => a.output().includes('reachable again'), 15_000, 'the recovery log line');
  const sub = await connectClient(t, a.mqttUrl, { clientId: 'after-outage' });
  const got = collect(sub);
  await sub.subscribeAsync('back/#', { qos: 1 });
  const pub = await connectClient(t, a.mqttUrl, { clientId: 'pub-after-outage' });
  await pub.publishAsync('back/x', 'works', { qos: 1 });
  await until(() => got.length === 1, 15_000, 'delivery after Redis came back');
  t.equal(got[0].payload.toString(), 'works');
});
