import type { Redis } from 'ioredis';

/** Set of the client ids with a persistent session (clean session 0), with subscriptions or without. */
export const KEPT_SESSIONS_KEY = 'mqprobe:sessions';

interface Client {
  id: string;
}
interface SessionStore {
  cleanSubscriptions(client: Client): Promise<void>;
  keepSession?: (client: Client) => Promise<boolean>;
}

/**
 * Gives aedes-persistence-redis the `keepSession` engine patch 60 asks: a persistent session exists
 * from its client's first connect with clean session 0 until it is wiped (a clean connect, its expiry),
 * subscriptions or not, so that a client coming back gets session present 1 as from Mosquitto. One set
 * for all processes; SADD answers whether the id was there.
 */
export function withKeptSessions<T>(persistence: T, redis: Redis): T {
  const p = persistence as T & SessionStore;
  const clean = p.cleanSubscriptions.bind(p);
  p.keepSession = async (client) => (await redis.sadd(KEPT_SESSIONS_KEY, client.id)) === 0;
  p.cleanSubscriptions = async (client) => {
    await Promise.all([clean(client), redis.srem(KEPT_SESSIONS_KEY, client.id)]);
  };
  return p;
}
