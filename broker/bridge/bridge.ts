import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { MqttClient, type IClientOptions, type IPublishPacket } from 'mqtt';
import type { Logger } from 'pino';
import type { BrokerApi } from '../engine/api.js';
import { internalMqttClient } from '../internal-client.js';
import { AckWindow } from './ack-window.js';
import { RestartTimer } from './backoff.js';
import { announceAsBridge } from './bridge-mode.js';
import { EchoFilter } from './echo-filter.js';
import type { BridgeEvent, BridgeState } from './events.js';
import { localClientId, notificationTopic, remoteClientId, type BridgeConfig } from './config.js';
import { openRemote } from './remote-stream.js';
import { localSubscriptions, mapIn, mapOut, outOnlyRemoteTopics, remoteSubscriptions, topicMatches, validTopicName } from './topics.js';

export type { BridgeEvent, BridgeState } from './events.js';

type LocalSub = { topic: string; qos: 0 | 1 | 2 };

export interface BridgeCounters {
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Out messages dropped: QoS 0 while the remote is down, too large for bridge_max_packet_size, unmappable topics. */
  dropped: number;
  /** Out messages handed to the remote and not yet acknowledged by it. */
  queued: number;
  reconnects: number;
}

/** How many QoS 0 messages a lazy bridge keeps for the remote while not connected (Mosquitto queues them for lazy bridges). */
const LAZY_QOS0_LIMIT = 1000;
/** The packet identifiers of one connection: the most messages that can be in flight on it. */
const MAX_WINDOW = 65_535;
/** How long a stop waits for the remote to acknowledge the last notification and the DISCONNECT. */
const STOP_GRACE_MS = 2000;

/**
 * One Mosquitto bridge: a local client of this broker (in-process, protocol version 0x84 so that the engine
 * gives its subscriptions no-local and retain-as-published, as Mosquitto does for its bridges) and a remote
 * client (mqtt.js, MQTT 3.1, 3.1.1 or 5.0 over TCP or TLS). A local message is acknowledged to the local
 * broker only once the remote has acknowledged it (QoS 1/2), and a remote message only once the local broker
 * has: while the remote is down, QoS 1/2 messages wait in the bridge's local session.
 */
export class Bridge {
  state: BridgeState = 'stopped';
  readonly counters: BridgeCounters = { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, queued: 0, reconnects: 0 };
  private local?: MqttClient;
  private remote?: MqttClient;
  private readonly restartTimer: RestartTimer;
  private retry?: NodeJS.Timeout;
  private idle?: NodeJS.Timeout;
  private primaryCheck?: NodeJS.Timeout;
  private addressIndex = 0;
  private lastError?: string;
  private stopping = false;
  /** Lazy bridges: messages that arrived for the remote since it was last connected. */
  private waitingForRemote = 0;
  private attempted = false;
  private readonly echoes = new EchoFilter();
  /** What the local client subscribes to (out and both lines). */
  private readonly localSubs: LocalSub[];
  /** A reload's replacement: the local subscriptions the replaced bridge left in the kept local session. */
  private previousSubs?: LocalSub[];
  /** QoS 1/2 local messages in flight to the remote. */
  private outWindow?: AckWindow;
  /** An MQTT 5 remote's Receive Maximum (CONNACK): it replaces max_inflight_messages, as in Mosquitto. */
  private remoteReceiveMaximum?: number;
  /** bridge_reload_type lazy: a reloaded config waits for the next (re)connection, which then starts it instead. */
  private replacement?: () => void;

  constructor(
    readonly config: BridgeConfig,
    private readonly broker: Pick<BrokerApi, 'connectInternal' | 'publish'>,
    /** The broker's max_inflight_messages (0: no limit): how many local messages are in flight to the remote, as in Mosquitto. */
    private readonly maxInflight: number,
    private readonly tls: ConnectionOptions | undefined,
    private readonly log: Logger,
    private readonly report: (e: BridgeEvent) => void,
  ) {
    this.restartTimer = new RestartTimer(config.restart);
    this.localSubs = localSubscriptions(config.topics);
  }

  get address(): string {
    const a = this.config.addresses[this.addressIndex];
    return `${a.host}:${a.port}`;
  }

  start(): void {
    const b = this.config;
    this.local = internalMqttClient(this.broker, {
      clientId: localClientId(b),
      protocolVersion: 4,
      clean: b.localCleansession ?? b.cleansession,
      username: b.localUsername,
      password: b.localPassword,
      keepalive: 0,
      reconnectPeriod: 1000,
      resubscribe: true,
    });
    // a bridge: the engine then gives its subscriptions no-local and retain-as-published
    announceAsBridge(this.local);
    this.local.on('error', (err) => this.log.warn(`bridge ${b.name}: local client: ${err.message}`));
    this.outWindow = new AckWindow(this.local, () => windowSize(this.remoteReceiveMaximum ?? this.maxInflight));
    this.local.handleMessage = (packet, done) => this.outgoing(packet, done);
    this.local.on('connect', (connack) => {
      // a kept session has the subscriptions: only those of the bridge this one replaced (reload) can differ
      const had = connack.sessionPresent ? (this.previousSubs ?? this.localSubs) : [];
      this.previousSubs = undefined;
      const differs = (a: LocalSub[], s: LocalSub) => !a.some((x) => x.topic === s.topic && x.qos === s.qos);
      const gone = had.filter((s) => !this.localSubs.some((x) => x.topic === s.topic));
      const added = this.localSubs.filter((s) => differs(had, s));
      if (gone.length) this.local!.unsubscribe(gone.map((s) => s.topic));
      if (added.length) this.local!.subscribe(Object.fromEntries(added.map((s) => [s.topic, { qos: s.qos }])));
    });
    this.remote = new MqttClient(() => this.openStream(), this.remoteOptions());
    // try_private on 3.x: the protocol level's top bit says "bridge" (5.0 uses no-local subscriptions instead)
    if (b.tryPrivate && b.protocolVersion !== 5) announceAsBridge(this.remote);
    this.remote.handleMessage = (packet, done) => this.incoming(packet, done);
    this.remote.on('connect', (connack) => this.onRemoteConnect(connack.properties?.receiveMaximum));
    this.remote.on('error', (err) => (this.lastError = describeError(err)));
    this.remote.on('close', () => this.onRemoteClose());
    if (b.startType === 'lazy') this.setState({ state: 'idle' });
    else this.connect();
  }

  /** Sends the notification "0" and a clean DISCONNECT, then closes both clients. */
  async stop(): Promise<void> {
    if (!this.local) return; // never started (the broker failed before its start)
    this.stopping = true;
    for (const t of [this.retry, this.idle, this.primaryCheck]) clearTimeout(t);
    const remote = this.remote;
    const wasConnected = remote?.connected;
    // a remote that went away without our noticing yet never acknowledges: the stop waits a bounded time
    if (remote?.connected && this.config.notifications && !this.config.notificationsLocalOnly) {
      await bounded(new Promise<void>((r) => remote.publish(notificationTopic(this.config), '0', { qos: 1, retain: true }, () => r())));
    }
    this.notifyLocal('0');
    await Promise.all([
      remote && bounded(new Promise<void>((r) => remote.end(!remote.connected, {}, () => r()))).then(() => remote.end(true)),
      this.local && bounded(new Promise<void>((r) => this.local!.end(false, {}, () => r()))).then(() => this.local!.end(true)),
    ]);
    this.setState({ state: 'stopped', reason: 'broker stopping', change: wasConnected ? 'disconnected' : undefined });
  }

  /**
   * After stop, for a bridge removed by a reload: ends its local session (a clean connect under its local client
   * id), so that nothing queues any more for a bridge that is gone, as Mosquitto frees a removed bridge's context.
   */
  async forgetLocalSession(): Promise<void> {
    const b = this.config;
    if (b.localCleansession ?? b.cleansession) return; // nothing was kept
    const local = internalMqttClient(this.broker, {
      clientId: localClientId(b),
      protocolVersion: 4,
      clean: true,
      keepalive: 0,
      reconnectPeriod: 0,
    });
    await bounded(new Promise<void>((r) => local.once('connect', () => r()).once('error', () => r())));
    await bounded(new Promise<void>((r) => local.end(false, {}, () => r())));
    local.end(true);
  }

  private remoteOptions(): IClientOptions {
    const b = this.config;
    const v5 = b.protocolVersion === 5;
    const props: NonNullable<IClientOptions['properties']> = {};
    if (v5) {
      // MQTT 5 has no clean session flag for the lifetime: session expiry stands for it
      props.sessionExpiryInterval = b.cleansession ? 0 : (b.sessionExpiryInterval ?? 0xffffffff);
      if (b.receiveMaximum) props.receiveMaximum = b.receiveMaximum;
      if (b.maxTopicAlias !== undefined) props.topicAliasMaximum = b.maxTopicAlias;
      if (b.maxPacketSize) props.maximumPacketSize = b.maxPacketSize;
    }
    const notify = b.notifications && !b.notificationsLocalOnly;
    return {
      clientId: remoteClientId(b),
      protocolVersion: b.protocolVersion,
      protocolId: b.protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
      clean: b.cleansession,
      username: b.remoteUsername,
      password: b.remotePassword,
      keepalive: b.keepalive,
      properties: v5 ? props : undefined,
      will: notify ? { topic: notificationTopic(b), payload: Buffer.from('0'), qos: 1, retain: true } : undefined,
      manualConnect: true,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
      resubscribe: false,
      queueQoSZero: b.startType === 'lazy',
    };
  }

  private openStream(): Duplex {
    const stream = openRemote(this.config, this.config.addresses[this.addressIndex], this.tls);
    return stream;
  }

  /** Before start: this bridge replaces `old` (reload) and takes over its local session and subscriptions. */
  takeOver(old: Bridge): void {
    this.previousSubs = old.localSubs;
    // the counters go on (a reload is no counter reset for Prometheus); what was in flight is back in the local session
    Object.assign(this.counters, old.counters, { queued: 0 });
  }

  /** Hands the next (re)connection to `start`, the bridge with a reloaded config (bridge_reload_type lazy). */
  replaceAtNextConnect(start: () => void): void {
    this.replacement = start;
  }

  private connect(): void {
    if (this.stopping || !this.remote) return;
    if (this.replacement) return this.replacement();
    this.setState({ state: 'connecting', address: this.address });
    // reconnect() without stores would start empty ones: the messages awaiting the remote's acknowledgement would be lost
    if (this.attempted) this.remote.reconnect({ incomingStore: this.remote.incomingStore, outgoingStore: this.remote.outgoingStore });
    else this.remote.connect();
    this.attempted = true;
  }

  private onRemoteConnect(receiveMaximum: number | undefined): void {
    const b = this.config;
    this.remoteReceiveMaximum = receiveMaximum;
    const remote = this.remote!;
    this.restartTimer.reset();
    this.waitingForRemote = 0;
    this.lastError = undefined;
    const v5 = b.protocolVersion === 5;
    const subs = remoteSubscriptions(b.topics);
    if (b.attemptUnsubscribe && outOnlyRemoteTopics(b.topics).length) remote.unsubscribe(outOnlyRemoteTopics(b.topics));
    if (subs.length) {
      const map: Record<string, { qos: 0 | 1 | 2; nl?: boolean; rap?: boolean }> = {};
      for (const s of subs) map[s.topic] = v5 ? { qos: s.qos, nl: b.tryPrivate, rap: true } : { qos: s.qos };
      remote.subscribe(map);
    }
    if (b.notifications) {
      if (!b.notificationsLocalOnly) remote.publish(notificationTopic(b), '1', { qos: 1, retain: true });
      this.notifyLocal('1');
    }
    this.setState({ state: 'connected', address: this.address, change: 'connected' });
    this.log.info(`Connecting bridge ${b.name} (${this.address}): connected`);
    if (b.startType === 'lazy') this.armIdle();
    if (!b.roundRobin && this.addressIndex !== 0) this.watchPrimary();
  }

  private onRemoteClose(): void {
    clearTimeout(this.idle);
    clearTimeout(this.primaryCheck);
    if (this.stopping) return;
    const wasConnected = this.state === 'connected';
    const reason = this.lastError ?? (wasConnected ? 'connection closed by the remote' : 'connection closed before CONNACK');
    this.lastError = undefined;
    if (wasConnected && this.config.notifications) this.notifyLocal('0');
    if (this.state === 'idle') return; // a lazy bridge that left after idle_timeout
    const address = this.address;
    const change = wasConnected ? 'disconnected' : 'connect-failed';
    // the next address: fallbacks in turn (round_robin false returns to the first one from watchPrimary)
    if (this.config.addresses.length > 1) this.addressIndex = (this.addressIndex + 1) % this.config.addresses.length;
    if (this.config.startType === 'once') {
      this.log.warn(`bridge ${this.config.name} (${address}): ${reason}; start_type once: not reconnecting`);
      this.setState({ state: 'stopped', address, reason, change });
      return;
    }
    if (this.config.startType === 'lazy') {
      this.log.warn(`bridge ${this.config.name} (${address}): ${reason}`);
      this.setState({ state: 'idle', address, reason, change });
      return;
    }
    const wait = this.restartTimer.next();
    this.log.warn(`bridge ${this.config.name} (${address}): ${reason}; retrying in ${wait.toFixed(1)} s`);
    this.setState({ state: 'waiting', address, reason, retryIn: wait, change });
    this.counters.reconnects++;
    this.retry = setTimeout(() => this.connect(), wait * 1000);
  }

  /** A local message for the remote; `done` lets the next one in (and, for QoS 1/2, acknowledges it to the local broker). */
  private outgoing(packet: IPublishPacket, done: () => void): void {
    const b = this.config;
    const payload = packet.payload as Buffer;
    // QoS 1/2: acknowledged to the local broker once the remote has it, in order, several in flight
    const handedOver = packet.qos > 0 ? this.outWindow!.take(packet, done) : done;
    if (this.echoes.isEcho(packet.topic, payload)) return handedOver();
    const topic = mapOut(b.topics, packet.topic);
    const remote = this.remote!;
    if (!validTopicName(topic) || (b.maxPacketSize > 0 && publishSize(topic, payload, packet.qos) > b.maxPacketSize)) {
      this.counters.dropped++;
      return handedOver();
    }
    const opts = { qos: packet.qos, retain: b.outgoingRetain && packet.retain };
    const lazy = b.startType === 'lazy';
    if (!remote.connected) {
      if (lazy) {
        this.waitingForRemote++;
        // a QoS 1/2 message cannot wait for the threshold: it holds the local queue behind it
        if (this.state === 'idle' && (packet.qos > 0 || this.waitingForRemote >= b.threshold)) this.connect();
      }
      if (packet.qos === 0 && (!lazy || this.waitingForRemote > LAZY_QOS0_LIMIT)) {
        this.counters.dropped++;
        return done();
      }
    }
    this.armIdle();
    this.counters.queued++;
    remote.publish(topic, payload, opts, (err) => {
      this.counters.queued--;
      // not acknowledged by the remote (the bridge is stopping): the local session keeps the message
      if (err) return;
      this.counters.messagesOut++;
      this.counters.bytesOut += payload.length;
      if (packet.qos > 0) handedOver();
    });
    if (packet.qos === 0) done();
  }

  /**
   * A remote message for the local broker; `done` acknowledges it to the remote and lets the next one in. One at a
   * time: the remote's own window keeps several in flight on the link, and a Mosquitto 2.0.11 remote sends QoS 1
   * messages out of order when several acknowledgements reach it together (docs/bridges.md).
   */
  private incoming(packet: IPublishPacket, done: () => void): void {
    const topic = mapIn(this.config.topics, packet.topic);
    const payload = packet.payload as Buffer;
    if (!validTopicName(topic)) return done();
    this.armIdle();
    if (this.localSubs.some((s) => topicMatches(s.topic, topic))) this.echoes.expect(topic, payload);
    this.local!.publish(topic, payload, { qos: packet.qos, retain: packet.retain }, (err) => {
      if (err) return;
      this.counters.messagesIn++;
      this.counters.bytesIn += payload.length;
      done();
    });
  }

  /** Lazy bridges: leave the remote after idle_timeout without a message. */
  private armIdle(): void {
    if (this.config.startType !== 'lazy' || this.state !== 'connected') return;
    clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      this.log.info(`bridge ${this.config.name}: idle for ${this.config.idleTimeout} s, disconnecting`);
      const remote = this.remote!;
      const disconnect = () => {
        this.setState({ state: 'idle', address: this.address, reason: 'idle_timeout', change: 'disconnected' });
        remote.end(false, {}, () => undefined);
      };
      if (this.config.notifications && !this.config.notificationsLocalOnly)
        remote.publish(notificationTopic(this.config), '0', { qos: 1, retain: true }, disconnect);
      else disconnect();
      this.notifyLocal('0');
    }, this.config.idleTimeout * 1000);
  }

  /** round_robin false on a fallback address: the first address is tried again now and then, and taken back when it answers. */
  private watchPrimary(): void {
    const every = (this.config.restart.cap ?? this.config.restart.base) * 1000;
    this.primaryCheck = setTimeout(() => {
      const primary = this.config.addresses[0];
      const probe = net.connect({ host: primary.host, port: primary.port, localAddress: this.config.bindAddress });
      probe.once('connect', () => {
        probe.destroy();
        this.log.info(`bridge ${this.config.name}: the first address ${primary.host}:${primary.port} answers again; moving back to it`);
        this.addressIndex = this.config.addresses.length - 1; // onRemoteClose steps on to index 0
        this.lastError = 'moving back to the first address (round_robin false)';
        this.remote!.stream.destroy();
      });
      probe.once('error', () => {
        probe.destroy();
        if (this.state === 'connected') this.watchPrimary();
      });
    }, every);
  }

  private notifyLocal(payload: '0' | '1'): void {
    if (!this.config.notifications) return;
    this.broker.publish({ topic: notificationTopic(this.config), payload: Buffer.from(payload), qos: 1, retain: true }, () => undefined);
  }

  private setState(e: Omit<BridgeEvent, 'bridge'>): void {
    this.state = e.state;
    this.report({ bridge: this.config.name, ...e });
  }
}

/** A direction's window from max_inflight_messages or a Receive Maximum (0: no limit but the packet identifiers). */
function windowSize(n: number): number {
  return n > 0 ? Math.min(n, MAX_WINDOW) : MAX_WINDOW;
}

/** Waits for `p`, but no longer than STOP_GRACE_MS. */
function bounded(p: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, STOP_GRACE_MS)))]).finally(() => clearTimeout(timer));
}

/** The size of a PUBLISH packet (fixed header, topic, packet id, payload), as bridge_max_packet_size counts it. */
function publishSize(topic: string, payload: Buffer, qos: number): number {
  const remaining = 2 + Buffer.byteLength(topic) + (qos > 0 ? 2 : 0) + payload.length;
  return 1 + (remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4) + remaining;
}

/** One line for a failed connection: a CONNACK refusal by its code, a socket or TLS error by its message. */
function describeError(err: Error & { code?: string | number }): string {
  if (typeof err.code === 'number') return `CONNACK refused (${err.code}): ${err.message}`;
  return err.code ? `${err.code}: ${err.message}` : err.message;
}
