import { join } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../../broker/config/errors.js';
import type { FastifyInstance } from 'fastify';
import type { BrokerApi } from '../../broker/engine/api.js';
import type { HttpAuth } from '../../broker/http-auth.js';
import type { Capture } from '../../capture/index.js';
import type { DetectConfig } from '../config.js';
import { BanList, fileStore, memoryStore, redisStore } from './bans.js';
import { createResponses, type Responses } from './index.js';
import { registerBanRoutes } from './http.js';

/** The ban file beside the persistence snapshot. */
export const BAN_FILE = 'mqprobe-bans.json';

/**
 * The composition root's one call: when detection is on and a `detect_response` is configured,
 * the bans (in Redis with `persistence_redis_url`, in `<persistence_location>/mqprobe-bans.json`
 * with `persistence true`, else in memory), the CONNECT guard, and the /bans routes.
 */
export async function startResponses(
  config: { detect: DetectConfig; persistence: boolean; persistenceLocation: string; persistenceRedisUrl?: string },
  deps: { broker: BrokerApi; http?: FastifyInstance; httpAuth?: HttpAuth; capture: Capture; rules: readonly string[]; log: Logger },
): Promise<Responses | undefined> {
  const rc = config.detect.response;
  if (!config.detect.enabled && rc.actions.size > 0) {
    const [rule, { pos }] = [...rc.actions][0];
    throw new ConfigError(pos, 'detect_response', `responds to alerts of ${rule}, but detection is off (detect off)`);
  }
  if (rc.actions.size === 0) return undefined;
  const store = config.persistenceRedisUrl
    ? redisStore(config.persistenceRedisUrl, deps.log)
    : config.persistence
      ? fileStore(join(config.persistenceLocation, BAN_FILE), deps.log)
      : memoryStore();
  const bans = new BanList(store);
  const { broker } = deps;
  const responses = createResponses(rc, {
    broker: {
      guardConnects: (g) => broker.guardConnects(g),
      disconnect: (m) => broker.disconnect(m),
      publishRetained: (topic, payload) => broker.publish({ topic, payload: Buffer.from(payload), qos: 0, retain: true }, () => undefined),
    },
    bans,
    emit: (e) => void deps.capture.emit(e),
    log: deps.log,
    rules: deps.rules,
  });
  try {
    await responses.start();
  } catch (err) {
    await bans.close();
    throw err;
  }
  if (deps.http && deps.httpAuth) registerBanRoutes(deps.http, deps.httpAuth, bans, rc.adminUsers);
  return responses;
}
