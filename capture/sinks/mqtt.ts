import type { BrokerApi } from '../../broker/engine/api.js';
import type { SinkIO } from '../runner.js';
import { SinkUnavailableError } from './elasticsearch.js';
import type { SinkDefinition } from './definition.js';

/**
 * `capture_sink mqtt <topic>`: each event published inside the broker as a QoS 0 message from the
 * broker itself (no client), which capture never records — so no event captures its own delivery.
 */
export function mqttSink(broker: BrokerApi, topic: string): SinkIO {
  const publish = (line: string) =>
    new Promise<void>((resolve, reject) => {
      broker.publish({ topic, payload: Buffer.from(line), qos: 0, retain: false }, (err) => (err ? reject(err) : resolve()));
    });
  return {
    async write(lines) {
      if (broker.closed) throw new SinkUnavailableError('the broker is closed');
      for (const line of lines) await publish(line);
    },
    close: async () => {},
    gone: () => broker.closed,
  };
}

export const mqttSinkDefinition: SinkDefinition = {
  kinds: ['mqtt'],
  usage: 'mqtt <topic>',
  parse(v) {
    v.count(2);
    const topic = v.word(1);
    if (/[+#]/.test(topic)) v.fail('the capture topic must not contain wildcards');
    return { kind: 'mqtt', target: topic };
  },
  name: (c) => `mqtt:${c.target}`,
  brokerThread: true,
  ownTopic: (c) => c.target!,
  create(c, env) {
    if (!env.broker) throw new Error('the mqtt capture sink needs the broker');
    return { io: mqttSink(env.broker, c.target!), spools: false };
  },
};
