/** A PUBLISH as the broker routes it. */
export interface PublishView {
  topic: string;
  qos: number;
  retain: boolean;
  dup: boolean;
  messageId?: number;
  payload: Buffer | string;
}

/** A subscription as a SUBSCRIBE asked for it (qos ≥ 128: refused). */
export interface SubscriptionView {
  topic: string;
  qos: number;
}
