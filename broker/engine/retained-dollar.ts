import { Transform, type Readable } from 'node:stream';
import { topicMatchesFilter } from '../auth/topic-filter.js';

interface RetainedSource {
  createRetainedStreamCombi(patterns: string[]): Readable;
}

/**
 * MQTT-4.7.2-1: a filter starting with `#` or `+` must not match topics starting with `$`.
 * Aedes enforces that for live messages but not for the retained messages it sends on SUBSCRIBE,
 * so a `#` subscriber would receive every retained `$SYS/broker/…` topic (Mosquitto sends none).
 * This keeps a retained message only when one of the subscribed filters really matches it.
 */
export function withDollarRuleOnRetained<T>(persistence: T): T {
  const source = persistence as unknown as RetainedSource;
  const original = source.createRetainedStreamCombi.bind(source);
  source.createRetainedStreamCombi = (patterns) =>
    original(patterns).pipe(
      new Transform({
        objectMode: true,
        transform(packet: { topic: string }, _enc, done) {
          if (packet.topic.charCodeAt(0) !== 36 || patterns.some((f) => topicMatchesFilter(f, packet.topic))) done(null, packet);
          else done();
        },
      }),
    );
  return persistence;
}
