/**
 * The MQTT 5 probes of probes.ts against the engine mqprobe ships: the vendored Aedes 2 beta with
 * mqprobe's patches (broker/engine/vendor/UPSTREAM.md), bare and on Redis, each answer compared
 * with expected.ts (the same table holds Mosquitto's answers: mqtt5-engine-evaluation.test.ts).
 */
import { join } from 'node:path';
import t from 'tap';
import { repoRoot } from '../helpers/paths.js';
import { startRedis } from '../helpers/redis.js';
import { BETA_OPTIONS, probeAll, startAedes } from './engines.js';

const vendoredDir = join(repoRoot, 'broker/engine/vendor/aedes');

t.test('vendored Aedes 2 beta + patches, bare, topicAliasMaximum 10, receiveMaximum 20, maximumPacketSize 10000', async (tt) =>
  probeAll(tt, 'aedes-vendored', await startAedes(tt, vendoredDir, BETA_OPTIONS)),
);

t.test('vendored Aedes 2 beta + patches on aedes-persistence-redis and mqemitter-redis, real redis-server', async (tt) => {
  const redis = await startRedis(tt);
  await probeAll(tt, 'aedes-vendored+redis', await startAedes(tt, vendoredDir, { ...BETA_OPTIONS, redis: redis.url }));
});
