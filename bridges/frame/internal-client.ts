import { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { BridgeHost } from '../contract.js';
import { duplexPair } from '../shared/duplex-pair.js';

/**
 * An MQTT client living inside the broker process: mqtt.js speaking over an in-memory stream pair
 * whose other end the broker accepts through `connectInternal`, exactly as it accepts a socket.
 * Its publishes therefore pass the broker's authentication, ACL, capture and delivery like any
 * other client's; the broker lets `$`-prefixed client ids in only over such internal streams.
 */
export class InternalClient {
  private readonly client: MqttClient;

  constructor(host: Pick<BridgeHost, 'connectInternal'>, readonly clientId: string, log: Logger) {
    this.client = new MqttClient(
      () => {
        const [mine, brokers] = duplexPair();
        host.connectInternal(brokers);
        return mine;
      },
      {
        clientId,
        protocolVersion: 4,
        clean: true,
        // in-process: no network to watch, and a broker restart replaces the whole process
        keepalive: 0,
        reconnectPeriod: 1000,
        queueQoSZero: true,
      },
    );
    this.client.on('error', (err) => log.warn({ err: err.message }, `internal client ${clientId}: ${err.message}`));
  }

  /** Resolves once the packet is handed to the broker (QoS 0) or acknowledged by it (QoS 1, 2). */
  publish(topic: string, payload: Buffer | string, opts: { qos: 0 | 1 | 2; retain: boolean }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.publish(topic, payload, opts, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Sends DISCONNECT after every queued publish and resolves when the broker has closed its end. */
  end(): Promise<void> {
    return new Promise((resolve) => this.client.end(false, {}, () => resolve()));
  }
}
