import type { BrokerConfig } from '../config/types.js';
import type { EngineOptions } from './engine.js';

/**
 * The engine options that carry Mosquitto's keys to MQTT 5 clients (their CONNACK properties) and
 * hold them to what it says: max_inflight_messages is the receive maximum (0: Mosquitto's "no
 * limit", nothing advertised), max_topic_alias the topic alias maximum, max_packet_size the maximum
 * packet size, max_qos and retain_available, persistent_client_expiration the longest session.
 */
export function mqtt5Options(config: BrokerConfig): EngineOptions {
  return {
    receiveMaximum: config.maxInflightMessages,
    topicAliasMaximum: config.maxTopicAlias,
    maximumPacketSize: config.maxPacketSize,
    maximumQoS: config.maxQos,
    retainAvailable: config.retainAvailable,
    sessionExpiryIntervalLimit: config.persistentClientExpiration ?? 0,
  };
}
