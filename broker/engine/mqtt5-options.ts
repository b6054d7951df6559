import type { BrokerConfig } from '../config/types.js';
import type { EngineOptions } from './engine.js';

/**
 * The engine options that carry Mosquitto's keys to MQTT 5 clients (their CONNACK properties) and
 * hold them to what it says: max_inflight_messages is the receive maximum (0: Mosquitto's "no
 * limit", nothing advertised), max_topic_alias the topic alias maximum, max_packet_size the maximum
 * packet size, max_qos and retain_available, persistent_client_expiration the longest session.
 * Shared subscriptions are served but in Redis mode: their groups live in one process, and there
 * every process would deliver each message to a member of its own (docs/mqtt5.md).
 */
export function mqtt5Options(config: BrokerConfig): EngineOptions {
  return {
    receiveMaximum: config.maxInflightMessages,
    topicAliasMaximum: config.maxTopicAlias,
    maximumPacketSize: config.maxPacketSize,
    maximumQoS: config.maxQos,
    retainAvailable: config.retainAvailable,
    sharedSubscriptions: !config.persistenceRedisUrl,
    sessionExpiryIntervalLimit: config.persistentClientExpiration ?? 0,
  };
}

/** Said once at start in Redis mode, where `$share/…` subscriptions are refused (SUBACK 0x80, MQTT 5: 0x9E). */
export const SHARED_OFF_IN_REDIS_MODE =
  'shared subscriptions ($share/...) are not available with persistence_redis_url: their groups are not shared between processes; such subscriptions are refused (SUBACK 0x80, MQTT 5: 0x9E)';
