import type { Duplex } from 'node:stream';
import type { MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import type { Logger } from 'pino';
import type { BrokerApi } from '../../broker/engine/api.js';
import { internalMqttClient } from '../../broker/internal-client.js';

const END_GRACE_MS = 2000;

interface Queued {
  topic: string;
  payload: Buffer | string;
  retain: boolean;
}

/**
 * An MQTT client living inside the broker process: mqtt.js speaking over an in-memory stream pair
 * whose other end the broker accepts through `connectInternal`, exactly as it accepts a socket.
 * Its publishes therefore go through the broker's capture, retain and delivery like any other
 * client's. The broker trusts it (no password check, `acl_file` not applied: an operator's ACL cannot
 * silence a configured beat) and lets `$`-prefixed client ids in only over such internal streams.
 */
export class InternalClient {
  private readonly client: MqttClient;
  /** The broker's end of the current connection, and ours. */
  private brokerSide?: Duplex;
  private mine?: Duplex;
  /** QoS 0 publishes of the running tick, written as one chunk when it ends. */
  private batch?: { messages: Queued[]; done: Promise<void> };
  /** Settles once mqtt.js has sent the QoS 0 publishes handed to it (while not connected). */
  private heldByMqttJs?: Promise<void>;

  constructor(
    broker: Pick<BrokerApi, 'connectInternal'>,
    readonly clientId: string,
    log: Logger,
  ) {
    this.client = internalMqttClient(
      broker,
      {
        clientId,
        protocolVersion: 4,
        clean: true,
        // in-process: no network to watch, and a broker restart replaces the whole process
        keepalive: 0,
        reconnectPeriod: 1000,
        queueQoSZero: true,
      },
      ({ mine, brokerSide }) => {
        this.mine = mine;
        this.brokerSide = brokerSide;
      },
    );
    this.client.on('error', (err) => log.warn({ err: err.message }, `internal client ${clientId}: ${err.message}`));
  }

  /**
   * QoS 0: resolves once the broker has read the packet (and with it every earlier one), so a caller
   * that awaits its publishes goes no faster than the broker takes them. The QoS 0 publishes of one
   * tick share one promise and reach the broker as one chunk of PUBLISH packets. QoS 1, 2: resolves
   * once the broker acknowledged the packet.
   */
  publish(topic: string, payload: Buffer | string, opts: { qos: 0 | 1 | 2; retain: boolean }): Promise<void> {
    if (opts.qos !== 0) return this.viaMqttJs(topic, payload, opts);
    let b = this.batch;
    if (!b) {
      let resolve!: (p: Promise<void>) => void;
      b = this.batch = { messages: [], done: new Promise((r) => (resolve = r)) };
      const messages = b.messages;
      queueMicrotask(() => {
        this.batch = undefined;
        resolve(this.send(messages));
      });
    }
    b.messages.push({ topic, payload, retain: opts.retain });
    return b.done;
  }

  private viaMqttJs(topic: string, payload: Buffer | string, opts: { qos: 0 | 1 | 2; retain: boolean }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.publish(topic, payload, opts, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Writes QoS 0 PUBLISH packets as one chunk and waits until the broker has read it. */
  private async send(messages: Queued[]): Promise<void> {
    // what mqtt.js still holds from an earlier batch goes first, so that the order stays the emit order
    await this.heldByMqttJs;
    const { mine: stream, brokerSide } = this;
    const chunk = this.client.connected && stream && brokerSide && !stream.destroyed ? encodePublishes(messages) : undefined;
    if (!chunk) {
      // not connected (mqtt.js queues them), or a packet MQTT cannot carry (mqtt.js rejects it with its own error)
      const sent = Promise.all(messages.map((m) => this.viaMqttJs(m.topic, m.payload, { qos: 0, retain: m.retain })));
      this.heldByMqttJs = sent.then(
        () => undefined,
        () => undefined,
      );
      await sent;
      return;
    }
    stream!.write(chunk);
    // Aedes reads its end again once it has handled what it read before; a broker that stops reading is polled gently
    for (let spins = 0; brokerSide!.readableLength > 0 && !brokerSide!.destroyed; spins++) {
      await new Promise((r) => (spins < 64 ? setImmediate(r) : setTimeout(r, 5)));
    }
  }

  /**
   * Sends DISCONNECT after every queued publish and resolves when the broker has closed its end. A
   * connection the broker has not finished accepting yet is cut after a grace time, so no half-open
   * connection (with the broker's CONNECT timer) outlives the beat.
   */
  async end(): Promise<void> {
    await this.batch?.done.catch(() => undefined);
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

/** QoS 0 PUBLISH packets in one buffer (mqtt-packet's encoder); undefined if one does not fit MQTT's limits. */
function encodePublishes(messages: Queued[]): Buffer | undefined {
  try {
    return Buffer.concat(
      messages.map(({ topic, payload, retain }) => mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 0, retain, dup: false })),
    );
  } catch {
    return undefined;
  }
}
