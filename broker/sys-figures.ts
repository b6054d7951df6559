import type { BrokerApi } from './engine/api.js';

/** One `$SYS/broker/<topic>` value: the topic below `$SYS/broker/` and what it reads. */
export type SysFigure = [topic: string, value: string | number];

/**
 * Publishes figures of the parts built on the broker (capture sinks, Kafka bridges) under `$SYS/broker/`
 * every sys_interval, retained, beside the broker's own tree (engine/sys-topics.ts), so a client reads them as
 * it reads Mosquitto's counters. Returns the stop function; sys_interval 0 publishes nothing, as for the tree.
 */
export function publishSysFigures(broker: Pick<BrokerApi, 'publish'>, intervalS: number, read: () => SysFigure[]): () => void {
  if (intervalS <= 0) return () => undefined;
  const tick = () => {
    for (const [topic, value] of read())
      broker.publish({ topic: `$SYS/broker/${topic}`, payload: Buffer.from(String(value)), qos: 0, retain: true }, () => undefined);
  };
  const timer = setInterval(tick, intervalS * 1000);
  timer.unref();
  tick();
  return () => clearInterval(timer);
}
