/** The JSON the API answers: the broker side's own types (docs/webview.md), under the page's names. */
export type {
  AlertView as Alert,
  PartView as Part,
  BusyTopic as Busy,
  ClientEvent,
  ClientView as Client,
  Health,
  HealthSample as Live,
  SinkView as Sink,
  Tick,
  TopicNode,
} from '../api-types.js';

/** An entry of `GET /bans` (detection's responses; the page reads only these fields). */
export interface Ban {
  entity: string;
  until?: string;
  rule?: string;
  reason?: string;
}
