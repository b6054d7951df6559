import type { Duplex } from 'node:stream';
import { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { BridgeHost } from '../contract.js';
import { duplexPair } from '../shared/duplex-pair.js';

const END_GRACE_MS = 2000;

/**
 * An MQTT client living inside the broker process: mqtt.js speaking over an in-memory stream pair
 * whose other end the broker accepts through `connectInternal`, exactly as it accepts a socket.
 * Its publishes therefore go through the broker's capture, retain and delivery like any other
 * client's. The broker trusts it (no password check, `acl_file` not applied: an operator's ACL cannot
 * silence a configured beat) and lets `$`-prefixed client ids in only over such internal streams.
 */
export class InternalClient {
  private readonly client: MqttClient;
  /** The broker's end of the current connection. */
  private brokerSide?: Duplex;

  constructor(host: Pick<BridgeHost, 'connectInternal'>, readonly clientId: string, log: Logger) {
    this.client = new MqttClient(
      () => {
        const [mine, brokers] = duplexPair();
        this.brokerSide = brokers;
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

  /**
   * Sends DISCONNECT after every queued publish and resolves when the broker has closed its end. A
   * connection the broker has not finished accepting yet is cut after a grace time, so no half-open
   * connection (with the broker's CONNECT timer) outlives the beat.
   */
  async end(): Promise<void> {
    const brokerSide = this.brokerSide;
    // mqtt.js queues a DISCONNECT until CONNACK: a client still connecting is closed at once instead
    const force = !this.client.connected;
    await new Promise<void>((resolve) => this.client.end(force, {}, () => resolve()));
    if (!brokerSide || brokerSide.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => brokerSide.destroy(), END_GRACE_MS);
      brokerSide.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
