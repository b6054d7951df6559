import type { Duplex } from 'node:stream';
import { MqttClient, type IClientOptions } from 'mqtt';
import type { BrokerApi } from './engine/api.js';
import { duplexPair } from './duplex-pair.js';

/** The two ends of one in-process connection: the client's, and the one the broker reads. */
export interface InternalEnds {
  mine: Duplex;
  brokerSide: Duplex;
}

/**
 * mqtt.js speaking to this broker over an in-memory stream pair whose other end the broker accepts
 * through `connectInternal`, exactly as it accepts a socket: what it publishes is captured, retained and
 * routed like any client's. Each (re)connect makes a new pair; `onConnect` is told its ends. Used by the
 * beats (bridges/frame/internal-client.ts) and the Mosquitto bridges' local side (broker/bridge/).
 */
export function internalMqttClient(
  broker: Pick<BrokerApi, 'connectInternal'>,
  opts: IClientOptions,
  onConnect?: (ends: InternalEnds) => void,
): MqttClient {
  return new MqttClient(() => {
    const [mine, brokerSide] = duplexPair();
    onConnect?.({ mine, brokerSide });
    broker.connectInternal(brokerSide);
    return mine;
  }, opts);
}
