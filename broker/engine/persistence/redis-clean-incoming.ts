import type { Redis } from 'ioredis';

interface Client {
  id: string;
}
interface Packet {
  messageId?: number;
}
/** The inbound QoS 2 methods of aedes-persistence-redis 11.2.2 (promise form, as the engine calls them). */
interface IncomingStore {
  incomingStorePacket(client: Client, packet: Packet): Promise<void>;
  incomingDelPacket(client: Client, packet: Packet): Promise<void>;
  cleanIncoming?: (client: Client) => Promise<void>;
}

/** Set of the message ids a client has in aedes-persistence-redis' `incoming:<client>:<id>` keys. */
export const incomingIdsKey = (clientId: string) => `mqprobe:incoming-ids:${encodeURIComponent(clientId)}`;
/** aedes-persistence-redis' own key prefix for one client's unreleased QoS 2 packets. */
const incomingPrefix = (clientId: string) => `incoming:${encodeURIComponent(clientId)}:`;

// deletes every listed packet and the list in one step, so no store can fall between the two
const CLEAN = `
local ids = redis.call('SMEMBERS', KEYS[1])
for _, id in ipairs(ids) do redis.call('DEL', ARGV[1] .. id) end
redis.call('DEL', KEYS[1])
return #ids`;

/**
 * Gives aedes-persistence-redis the `cleanIncoming` it lacks (11.2.2; aedes-persistence has it since
 * 11.0.0), which engine patch 05 calls on a clean connect and when a clean session ends: without it a
 * QoS 2 packet id reused after a clean reconnect was taken for a duplicate and the message lost
 * (GHSA-p8r9-qf8w-p73r).
 *
 * The packets are `incoming:<client>:<id>` keys with nothing listing them; finding them by SCAN would
 * walk the whole keyspace on every clean connect. So each stored id is also recorded in a set per
 * client, and cleanIncoming deletes what the set names. The record and the packet are sent together
 * on the same connection (one order in Redis), the record first, so the set always names at least the
 * packets there are. Packets stored before mqprobe kept the set are not found (docs/scaling-redis.md).
 */
export function withCleanIncoming<T>(persistence: T, redis: Redis): T {
  const p = persistence as T & IncomingStore;
  const store = p.incomingStorePacket.bind(p);
  const del = p.incomingDelPacket.bind(p);
  p.incomingStorePacket = async (client, packet) => {
    // both commands leave in this tick, in this order (no await between them)
    const recorded = redis.sadd(incomingIdsKey(client.id), String(packet.messageId));
    await Promise.all([recorded, store(client, packet)]);
  };
  p.incomingDelPacket = async (client, packet) => {
    const deleted = del(client, packet);
    await Promise.all([deleted, redis.srem(incomingIdsKey(client.id), String(packet.messageId))]);
  };
  p.cleanIncoming = async (client) => {
    await redis.eval(CLEAN, 1, incomingIdsKey(client.id), incomingPrefix(client.id));
  };
  return p;
}
