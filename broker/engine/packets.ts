/** The MQTT 5 properties of a PUBLISH, as mqtt-packet decodes them (absent for 3.1.1). */
export interface PublishProperties {
  payloadFormatIndicator?: boolean;
  messageExpiryInterval?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: Record<string, string | string[]>;
  subscriptionIdentifier?: number | number[];
}

/** A PUBLISH as the broker routes it. */
export interface PublishView {
  topic: string;
  qos: number;
  retain: boolean;
  dup: boolean;
  messageId?: number;
  payload: Buffer | string;
  properties?: PublishProperties;
}

/** A subscription as a SUBSCRIBE asked for it (qos ≥ 128: refused; MQTT 5: its reason code). */
export interface SubscriptionView {
  topic: string;
  qos: number;
  /** MQTT 5 subscription options: no local, retain as published, retain handling. */
  nl?: boolean;
  rap?: boolean;
  rh?: number;
  subscriptionIdentifier?: number;
}
