import type { IPublishPacket, MqttClient } from 'mqtt';

type Ack = { cmd: string; messageId?: number };
type SendPacket = (packet: Ack, cb?: (err?: Error) => void, ...rest: unknown[]) => void;

interface Entry {
  messageId: number;
  /** The other side has the message: the acknowledgement may go. */
  handedOver: boolean;
  /** The PUBACK/PUBCOMP mqtt.js built for it, held until the entry is handed over and first in line. */
  ack?: Ack;
}

/**
 * Several QoS 1/2 messages in flight through one mqtt.js client while each is acknowledged only once the
 * other side of the bridge has it. mqtt.js reads the next packet only after `handleMessage` calls back, and
 * that call back also sends the PUBACK (PUBCOMP for QoS 2), so on its own it holds one message at a time.
 * Here `handleMessage` calls back at once while fewer than `size()` messages are unsettled, and the
 * acknowledgement it makes is held back (mqtt.js 5.16.0, pinned: its `_sendPacket` is wrapped) until the
 * message is handed over, then sent in the order the messages came [MQTT-4.6.0-2]. With the window full
 * the client stops reading: what waits stays in the sender's session, not in this process.
 * A lost connection forgets the held acknowledgements: the sender's session sends those messages again.
 */
export class AckWindow {
  private entries: Entry[] = [];
  private resume?: () => void;
  private readonly send: SendPacket;

  constructor(
    client: MqttClient,
    private readonly size: () => number,
  ) {
    const writer = client as unknown as { _sendPacket: SendPacket };
    this.send = writer._sendPacket.bind(client);
    writer._sendPacket = (packet, cb, ...rest) => {
      const entry =
        (packet.cmd === 'puback' || packet.cmd === 'pubcomp') && this.entries.find((e) => e.messageId === packet.messageId && !e.ack);
      if (!entry) return this.send(packet, cb, ...rest);
      entry.ack = packet;
      cb?.();
      this.flush();
    };
    client.on('close', () => {
      this.entries = [];
      this.resume = undefined;
    });
  }

  /** Messages taken and not yet acknowledged. */
  get pending(): number {
    return this.entries.length;
  }

  /**
   * Takes a QoS 1/2 message from `handleMessage` (`done` is its call back); returns what to call once the
   * other side has the message. A message from a connection since lost is not acknowledged.
   */
  take(packet: IPublishPacket, done: () => void): () => void {
    const entry: Entry = { messageId: packet.messageId!, handedOver: false };
    const entries = this.entries;
    entries.push(entry);
    if (entries.length < this.size()) done();
    else this.resume = done;
    return () => {
      if (entries !== this.entries) return;
      entry.handedOver = true;
      this.flush();
    };
  }

  private flush(): void {
    while (this.entries.length && this.entries[0].handedOver && this.entries[0].ack) this.send(this.entries.shift()!.ack!);
    // a full window: the message taken last gets its acknowledgement made (and the next one read) once another
    // leaves, or once it is itself first in line and handed over (a window of 1)
    const head = this.entries[0];
    if (this.resume && (this.entries.length < this.size() || (head?.handedOver && !head.ack))) {
      const resume = this.resume;
      this.resume = undefined;
      resume();
    }
  }
}
