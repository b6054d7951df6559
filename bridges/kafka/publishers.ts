/**
 * Who published a message the Kafka bridge receives: a delivered PUBLISH does not say, so the broker's
 * `publish` events of the bridged topics are remembered (per topic, in order, a bounded number) and matched by
 * payload when the message comes back to the bridge's session. A message delivered from a session stored
 * before a restart has no entry: its record carries no client id header.
 */
import type { BrokerApi } from '../../broker/engine/api.js';
import { topicMatchesFilter } from '../../broker/auth/topic-filter.js';

const MAX_REMEMBERED = 100_000;

export interface Publishers {
  matches(filter: string, topic: string): boolean;
  /** The publisher's client id of this message, forgetting it and anything older on the topic. */
  take(topic: string, payload: Buffer | string): string | undefined;
  stop(): void;
}

export function watchPublishers(broker: Pick<BrokerApi, 'on'>, filters: string[]): Publishers {
  const byTopic = new Map<string, { payload: Buffer | string; clientId: string }[]>();
  let count = 0;
  const listener = (packet: { topic: string; payload: Buffer | string }, client: { id: string } | null) => {
    if (!client || !filters.some((f) => topicMatchesFilter(f, packet.topic))) return;
    // past the bound the oldest topic's memory goes (a bridge that stopped taking messages)
    if (count >= MAX_REMEMBERED) {
      const [oldest, list] = byTopic.entries().next().value!;
      count -= list.length;
      byTopic.delete(oldest);
    }
    const list = byTopic.get(packet.topic) ?? [];
    list.push({ payload: packet.payload, clientId: client.id });
    byTopic.set(packet.topic, list);
    count++;
  };
  const off = broker.on('publish', listener);
  return {
    matches: topicMatchesFilter,
    take(topic, payload) {
      const list = byTopic.get(topic);
      const i = list?.findIndex((e) => Buffer.compare(Buffer.from(e.payload), Buffer.from(payload)) === 0) ?? -1;
      if (!list || i < 0) return undefined;
      const hit = list.splice(0, i + 1).at(-1)!;
      count -= i + 1;
      if (list.length === 0) byTopic.delete(topic);
      return hit.clientId;
    },
    stop: off,
  };
}
