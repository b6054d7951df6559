import type { PublishProperties, SubscriptionView } from '../broker/engine/api.js';
import {
  connectFactsOf,
  receiveMaximumOf,
  requestedQosOf,
  sessionExpiryOf,
  topicAliasOf,
  userPropertyNames,
  type ClientHandle,
} from '../broker/engine/client.js';
import type { MqttFields, MqttSubscription } from './event.js';

/**
 * The MQTT 5 fields of capture events (docs/capture-events.md, "MQTT 5"). Each is written only when
 * the packet carried it, so a 3.1.1 client's events are what they always were. Never written:
 * authentication data, passwords, correlation data (only its size), and user property values
 * unless capture_payload keeps payloads (a user property can carry a token).
 */

/** The CONNECT's session and flow-control facts of an MQTT 5 client. */
export function connectFields(m: MqttFields, c: ClientHandle): void {
  const facts = connectFactsOf(c);
  if (!facts) return;
  const expiry = sessionExpiryOf(c);
  if (expiry !== undefined) m.session_expiry_interval = expiry;
  const receive = receiveMaximumOf(c);
  if (receive !== undefined) m.receive_maximum = receive;
  if (facts.maximumPacketSize !== undefined) m.maximum_packet_size = facts.maximumPacketSize;
  if (facts.topicAliasMaximum !== undefined) m.topic_alias_maximum = facts.topicAliasMaximum;
  if (facts.authenticationMethod !== undefined) m.authentication_method = facts.authenticationMethod;
  if (facts.userPropertyNames) m.user_property_names = facts.userPropertyNames;
}

/** What a refused MQTT 5 CONNECT tells beyond its reason code: the authentication method it asked for (0x8C). */
export function refusedConnectFields(m: MqttFields, c: ClientHandle): void {
  const method = connectFactsOf(c)?.authenticationMethod;
  if (method !== undefined) m.authentication_method = method;
}

/** True when a PUBLISH carries MQTT 5 properties capture reports (its event is then built on the broker's thread). */
export const hasPublishProperties = (p: { properties?: PublishProperties }): boolean =>
  p.properties !== undefined && Object.keys(p.properties).length + (topicAliasOf(p.properties) === undefined ? 0 : 1) > 0;

/** The PUBLISH properties of an MQTT 5 message; user property values only when `keepValues` (capture_payload is not off). */
export function publishProperties(m: MqttFields, props: PublishProperties | undefined, keepValues: boolean): void {
  if (!props) return;
  const alias = topicAliasOf(props);
  if (alias !== undefined) m.topic_alias = alias;
  if (props.contentType !== undefined) m.content_type = props.contentType;
  if (props.payloadFormatIndicator !== undefined) m.payload_format_indicator = props.payloadFormatIndicator ? 1 : 0;
  if (props.responseTopic !== undefined) m.response_topic = props.responseTopic;
  if (props.correlationData !== undefined) m.correlation_data_size = props.correlationData.length;
  if (props.messageExpiryInterval !== undefined) m.message_expiry_interval = props.messageExpiryInterval;
  const names = userPropertyNames(props);
  if (names) {
    m.user_property_names = names;
    if (keepValues) m.user_properties = userProperties(props.userProperties!);
  }
}

/** mqtt-packet gives a repeated user property as an array of its values: one entry per value, in order. */
function userProperties(up: Record<string, string | string[]>): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  for (const [name, v] of Object.entries(up)) for (const value of Array.isArray(v) ? v : [v]) out.push({ name, value });
  return out;
}

/** `$share/<group>/<filter>` → group (any protocol version: 3.1.1 clients share too). */
export function sharedGroup(topic: string): string | undefined {
  if (!topic.startsWith('$share/')) return undefined;
  const end = topic.indexOf('/', 7);
  return end > 7 ? topic.slice(7, end) : undefined;
}

/** A subscription's entry with its MQTT 5 options, identifier and shared group where they apply. */
export function subscriptionEntry(s: SubscriptionView, granted: number, v5: boolean): MqttSubscription {
  const entry: MqttSubscription = { topic: s.topic, qos: v5 ? (requestedQosOf(s) ?? s.qos) : s.qos, granted_qos: granted };
  if (v5) {
    entry.no_local = s.nl === true;
    entry.retain_as_published = s.rap === true;
    entry.retain_handling = s.rh ?? 0;
    if (s.subscriptionIdentifier !== undefined) entry.subscription_identifier = s.subscriptionIdentifier;
  }
  const group = sharedGroup(s.topic);
  if (group !== undefined) entry.shared_group = group;
  return entry;
}
