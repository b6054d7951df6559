/**
 * Engine evaluation for issue 19 (docs/engine.md), not a test of mqprobe: the MQTT 5 probes of
 * probes.ts against bare engines started here — Aedes 1.2 (node_modules), the Aedes 2 beta
 * (installed outside the project: AEDES_BETA_DIR names its package folder) and the real
 * Mosquitto 2.0.11 — each answer compared with the table in docs/engine.md. When the answers
 * change (a new beta, a patch), this test fails and the table is out of date.
 * ENGINE_PROBE_OBSERVE=1 prints the answers instead of comparing them.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { waitForPort } from '../helpers/broker.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { startRedis } from '../helpers/redis.js';
import { BETA_OPTIONS, MOSQUITTO_CONF, probeAll, startAedes } from './engines.js';

const betaDir = process.env.AEDES_BETA_DIR;

t.test('Aedes 1.2 (node_modules), bare', async (tt) => {
  await probeAll(tt, 'aedes-1.2', await startAedes(tt, '', {}));
});

t.test('Mosquitto 2.0.11, max_packet_size 10000', async (tt) => {
  const m = await startMosquitto(tt, MOSQUITTO_CONF);
  const running = () =>
    new Promise<boolean>((resolve) =>
      waitForPort(m.port, 200).then(
        () => resolve(true),
        () => resolve(false),
      ),
    );
  await probeAll(tt, 'mosquitto', {
    port: m.port,
    log: () => m.output(),
    ensureRunning: async () => void ((await running()) || (await m.start())),
  });
});

// The candidate is not a dependency of mqprobe (docs/engine.md says how to install it for this test):
// its probes exist only where AEDES_BETA_DIR names an installed aedes@2.0.0-beta.1, so the suite
// neither skips nor pretends to have run them.
if (betaDir && existsSync(join(betaDir, 'aedes.js'))) {
  t.test('Aedes 2 beta (AEDES_BETA_DIR), bare, topicAliasMaximum 10, receiveMaximum 20, maximumPacketSize 10000', async (tt) =>
    probeAll(tt, 'aedes-2.0.0-beta.1', await startAedes(tt, betaDir, BETA_OPTIONS)),
  );

  t.test(
    "Aedes 2 beta (AEDES_BETA_DIR) on aedes-persistence-redis and mqemitter-redis (mqprobe's versions), real redis-server",
    async (tt) => {
      const redis = await startRedis(tt);
      await probeAll(tt, 'aedes-2.0.0-beta.1+redis', await startAedes(tt, betaDir, { ...BETA_OPTIONS, redis: redis.url }));
    },
  );
}
