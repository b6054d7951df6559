/** A capture event: the ECS-shaped object of docs/capture-events.md, one JSON line per event. */

export const ECS_VERSION = '8.11.0';
export const DATASET = 'mqtt.capture';

export interface MqttSubscription {
  topic: string;
  qos: number;
  granted_qos: number;
  /** MQTT 5 subscription options. */
  no_local?: boolean;
  retain_as_published?: boolean;
  retain_handling?: number;
  subscription_identifier?: number;
  /** The group of a `$share/<group>/<filter>` subscription. */
  shared_group?: string;
}

export interface MqttFields {
  client_id?: string;
  protocol_version?: number;
  clean_session?: boolean;
  keepalive?: number;
  topic?: string;
  qos?: number;
  retain?: boolean;
  dup?: boolean;
  message_id?: number;
  payload_size?: number;
  /** Set by the payload policy at serialisation time; a Buffer only while the event waits for its flush. */
  payload?: string | Buffer;
  payload_encoding?: 'utf8' | 'base64';
  payload_truncated?: boolean;
  subscriptions?: MqttSubscription[];
  reason_code?: number;
  will?: { topic: string; qos: number; retain: boolean; payload_size: number };
  // MQTT 5 (capture/mqtt5.ts): present only when the packet carried them
  /** The reason code of the DISCONNECT the broker sent (client-disconnected; mqtt.reason_code is the client's). */
  server_reason_code?: number;
  session_expiry_interval?: number;
  receive_maximum?: number;
  maximum_packet_size?: number;
  topic_alias_maximum?: number;
  authentication_method?: string;
  user_property_names?: string[];
  /** Only when capture_payload is not off: a user property can carry a token. */
  user_properties?: { name: string; value: string }[];
  topic_alias?: number;
  content_type?: string;
  payload_format_indicator?: number;
  response_topic?: string;
  correlation_data_size?: number;
  message_expiry_interval?: number;
  shared_group?: string;
  subscription_identifier?: number;
}

export interface Observer {
  type: 'mqtt-broker';
  product: 'mqprobe';
  /** The host name. */
  name: string;
  version: string;
  ingress?: { interface: { name: string } };
}

export interface CaptureEvent {
  '@timestamp': string;
  message: string;
  ecs: { version: string };
  event: {
    kind: 'event' | 'alert' | 'metric';
    category?: string[];
    type?: string[];
    action: string;
    outcome?: 'success' | 'failure' | 'unknown';
    dataset: string;
    id: string;
    sequence: number;
    /** Why: a refusal reason, a disconnect reason, a drop reason. */
    reason?: string;
    [more: string]: unknown;
  };
  observer: Observer;
  /** `id`: the broker instance (Aedes id); event.sequence counts per instance. */
  service: { type: 'mqtt'; id: string };
  source?: { ip?: string; port?: number };
  destination?: { port: number };
  user?: { name: string };
  network?: { protocol: 'mqtt'; transport: 'tcp'; application?: 'websocket' };
  tls?: {
    established: true;
    version?: string;
    version_protocol?: 'tls';
    cipher?: string;
    client?: { subject?: string; issuer?: string; x509?: { serial_number?: string }; server_name?: string };
  };
  mqtt?: MqttFields;
  error?: { message: string; type?: string };
  mqprobe?: Record<string, unknown>;
  [more: string]: unknown;
}

/** What a caller of `emit()` gives: at least an action; capture fills in identity, time and sequence. */
export type PartialEvent = {
  event: { action: string; kind?: CaptureEvent['event']['kind'] } & Record<string, unknown>;
  '@timestamp'?: string;
  message?: string;
} & Record<string, unknown>;

export type CaptureListener = (event: Readonly<CaptureEvent>) => void;

/**
 * An event as the few facts a notice listener reads (detection: they are what its observation of
 * the event holds), handed over instead of the event object, which is then never built. A
 * publish-received becomes a notice whenever every listener takes notices; the per-client events
 * (connections, subscriptions, denials, disconnects) only when, besides, no sink needs their line.
 * Fields are those of the event the hook would have made: `time` is its `@timestamp` in epoch ms,
 * `seq` its event.sequence, and an empty string is absent. Every notice listener gets the same
 * object; detection may move `time` forward (its clock never goes back), nothing else changes it.
 */
export class Notice {
  /** Set when the pipeline queues the notice. */
  time = 0;
  seq = 0;
  /** `mqtt.topic`. */
  topic?: string = undefined;
  /** `mqtt.payload_size`. */
  payloadSize?: number = undefined;
  /** `mqtt.payload` as capture_payload keeps it, set at flush time from `raw`. */
  payload?: string = undefined;
  payloadEncoding?: string = undefined;
  /** The payload until the flush applies capture_payload to it (only when that is not off). */
  raw?: Buffer = undefined;
  /** `event.reason`. */
  reason?: string = undefined;
  /** `mqtt.reason_code`. */
  reasonCode?: number = undefined;
  /** `mqtt.subscriptions` of a subscription event: its filter, whether refused, the granted QoS or SUBACK code. */
  subscriptions?: { filter: string; denied: boolean; code?: number }[] = undefined;

  constructor(
    readonly action: string,
    /** `source.ip`. */
    readonly ip: string | undefined,
    /** `user.name`. */
    readonly user: string | undefined,
    /** `mqtt.client_id`. */
    readonly clientId: string | undefined,
  ) {}
}

/** Takes events as notices (no event object); the events not made notices go to the listener itself. */
export type NoticeListener = (notice: Notice) => void;
