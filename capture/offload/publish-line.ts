import type { ClientHandle } from '../../broker/engine/client.js';
import type { ConnInfo } from '../../broker/probe.js';
import type { EventFactory } from '../build.js';
import { describe } from '../describe.js';
import type { CaptureEvent } from '../event.js';
import { publishReceived } from '../hooks.js';
import { ecsLine } from '../serialize.js';
import type { PublishFacts } from './tape.js';

const HEAD = '{"@timestamp":"","message":"",';
const EVENT = '"event":{"id":"","sequence":0';
const MQTT = ',"mqtt":{';

/**
 * The ECS line of one client's publish-received events (without payload), for the capture
 * thread's hot path. Everything in it but time, message, id, sequence and the PUBLISH's facts is
 * the same for every publish of the client, so it is cut once out of the line the generic path
 * writes for a sample event, and each line is joined from those pieces and the few values that
 * change; the message comes from describe() as always. The result is byte for byte the generic
 * path's line (test/capture/offload.test.ts compares them).
 */
export class PublishLine {
  private readonly scratch: CaptureEvent;
  private readonly ecs: string;
  private readonly afterSequence: string;
  private readonly mqttHead: string;

  /** undefined when the sample line does not have the shape the pieces are cut from (then the generic path writes every line). */
  static of(factory: EventFactory, c: ClientHandle, conn: ConnInfo | undefined, user: string | undefined): PublishLine | undefined {
    const scratch = publishReceived(factory, c, conn, user, { topic: '', qos: 0, retain: false, dup: false }, 0, undefined);
    const sample = ecsLine(scratch);
    const event = sample.indexOf(EVENT);
    const mqtt = sample.lastIndexOf(MQTT);
    const mqttHead = `${MQTT}"client_id":${JSON.stringify(c.id)},"topic":`;
    if (!sample.startsWith(HEAD) || event < 0 || !sample.startsWith(mqttHead, mqtt)) return undefined;
    return new PublishLine(scratch, sample.slice(HEAD.length, event), sample.slice(event + EVENT.length, mqtt), mqttHead);
  }

  private constructor(scratch: CaptureEvent, ecs: string, afterSequence: string, mqttHead: string) {
    this.scratch = scratch;
    this.ecs = ecs;
    this.afterSequence = afterSequence;
    this.mqttHead = mqttHead;
  }

  /** `id`: the event.id text, JSON-quoted. */
  line(iso: string, id: string, seq: number, p: PublishFacts, size: number): string {
    const m = this.scratch.mqtt!;
    m.topic = p.topic;
    m.qos = p.qos;
    m.retain = p.retain;
    m.dup = p.dup;
    m.payload_size = size;
    const topic = JSON.stringify(p.topic);
    return `{"@timestamp":"${iso}","message":${JSON.stringify(describe(this.scratch))},${this.ecs}"event":{"id":${id},"sequence":${seq}${this.afterSequence}${this.mqttHead}${topic},"qos":${p.qos},"retain":${p.retain},"dup":${p.dup}${p.messageId === undefined ? '' : `,"message_id":${p.messageId}`},"payload_size":${size}}}`;
  }
}
