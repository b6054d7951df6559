import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Aedes, Client } from './vendor/aedes/aedes.js';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { BrokerProbe } from '../probe.js';
import { observeWrites, type WrittenPacket } from './packet-writes.js';

type Packet = WrittenPacket;

/** The broker's traffic counters: the single source for $SYS topics and /metrics. */
export class BrokerStats {
  readonly startedAt = Date.now();
  messagesReceived = 0;
  messagesSent = 0;
  publishReceived = 0;
  publishSent = 0;
  publishDropped = 0;
  publishBytesReceived = 0;
  publishBytesSent = 0;
  connectionsTotal = 0;
  socketsTotal = 0;
  clientsMaximum = 0;
  private closedBytesIn = 0;
  private closedBytesOut = 0;
  /** Open client sockets and the listener label of each. */
  private readonly live = new Map<Socket, string>();
  /** Shared by every connection (a connection keeps no closure of its own here). */
  private readonly onSent = (p: Packet) => this.countSent(p);
  private readonly onReceived = (p: Packet) => this.countReceived(p);
  private readonly onClose: (this: Socket) => void;

  private readonly authFailures: Counter<'reason'>;
  private readonly aclDenials: Counter<'action'>;
  private readonly queueFullDrops: Counter<'qos'>;
  private readonly listenerConnections: Gauge<'listener'>;

  constructor(aedes: Aedes, probe: BrokerProbe, registry: Registry) {
    const closed = (raw: Socket) => this.closed(raw);
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    counter('mqprobe_messages_received_total', 'MQTT packets of any type received.', () => this.messagesReceived);
    counter('mqprobe_messages_sent_total', 'MQTT packets of any type sent.', () => this.messagesSent);
    counter('mqprobe_publish_received_total', 'PUBLISH packets received.', () => this.publishReceived);
    counter('mqprobe_publish_sent_total', 'PUBLISH packets sent.', () => this.publishSent);
    counter(
      'mqprobe_publish_dropped_total',
      'PUBLISH packets dropped (ACL, message_size_limit, full subscriber queues).',
      () => this.publishDropped,
    );
    counter('mqprobe_bytes_received_total', 'Bytes received on client connections.', () => this.bytesReceived());
    counter('mqprobe_bytes_sent_total', 'Bytes sent on client connections.', () => this.bytesSent());
    new Gauge({
      name: 'mqprobe_clients_connected',
      help: 'Connected clients.',
      registers: [registry],
      collect() {
        this.set(aedes.connectedClients);
      },
    });
    this.listenerConnections = new Gauge({
      name: 'mqprobe_listener_connections',
      help: 'Open connections per listener.',
      labelNames: ['listener'],
      registers: [registry],
    });
    this.authFailures = new Counter({
      name: 'mqprobe_auth_failures_total',
      help: 'Refused CONNECTs by reason.',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.queueFullDrops = new Counter({
      name: 'mqprobe_queue_full_drops_total',
      help: "Messages dropped because the subscriber's queue was full (QoS 0: max_queued_bytes; QoS 1/2: max_queued_messages).",
      labelNames: ['qos'],
      registers: [registry],
    });
    this.aclDenials = new Counter({
      name: 'mqprobe_acl_denials_total',
      help: 'ACL denials by action.',
      labelNames: ['action'],
      registers: [registry],
    });

    probe.on('connection-refused', (_c, _code, reason) => this.authFailures.inc({ reason }));
    probe.on('publish-denied', () => {
      this.publishDropped++;
      this.aclDenials.inc({ action: 'publish' });
    });
    probe.on('subscription-denied', () => this.aclDenials.inc({ action: 'subscribe' }));
    probe.on('connection-opened', (info) => {
      this.socketsTotal++;
      this.listenerConnections.inc({ listener: `${info.listener.bind ?? '*'}:${info.listenerPort}` });
    });
    this.onClose = function (this: Socket) {
      closed(this);
    };
    aedes.on('clientReady', () => {
      this.connectionsTotal++;
      this.clientsMaximum = Math.max(this.clientsMaximum, aedes.connectedClients);
    });
  }

  /** Starts counting a new connection: `raw` is the TCP socket under it (under the WebSocket for ws). */
  track(client: Client, stream: Duplex, raw: Socket, listenerLabel: string): void {
    observeWrites(stream, this.onSent);
    this.live.set(raw, listenerLabel);
    (client as unknown as { _parser: { on(e: 'packet', f: (p: Packet) => void): void } })._parser.on('packet', this.onReceived);
    raw.on('close', this.onClose);
  }

  private closed(raw: Socket): void {
    const label = this.live.get(raw);
    if (label === undefined) return;
    this.live.delete(raw);
    this.closedBytesIn += raw.bytesRead;
    this.closedBytesOut += raw.bytesWritten;
    this.listenerConnections.dec({ listener: label });
  }

  /** A message not sent to a subscriber whose queue was full (max_queued_bytes, max_queued_messages). */
  countQueueFullDrop(qos: number): void {
    this.publishDropped++;
    this.queueFullDrops.inc({ qos: String(qos) });
  }

  countReceived(p: Packet): void {
    this.messagesReceived++;
    if (p.cmd === 'publish') {
      this.publishReceived++;
      this.publishBytesReceived += p.payload?.length ?? 0;
    }
  }

  countSent(p: Packet): void {
    this.messagesSent++;
    if (p.cmd === 'publish') {
      this.publishSent++;
      this.publishBytesSent += p.payload?.length ?? 0;
    }
  }

  bytesReceived(): number {
    let n = this.closedBytesIn;
    for (const s of this.live.keys()) n += s.bytesRead;
    return n;
  }

  bytesSent(): number {
    let n = this.closedBytesOut;
    for (const s of this.live.keys()) n += s.bytesWritten;
    return n;
  }
}
