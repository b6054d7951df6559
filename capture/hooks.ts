import type { BrokerEvents, PublishView } from '../broker/engine/api.js';
import { cleanSessionOf, isClosed, keepaliveOf, protocolVersionOf, willTopicOf, type ClientHandle } from '../broker/engine/client.js';
import type { ConnInfo, RefusalReason } from '../broker/probe.js';
import type { EventFactory } from './build.js';
import type { CaptureEvent, MqttFields } from './event.js';
import type { CaptureHandle } from './handle.js';
import type { PublishFacts } from './offload/tape.js';
import { fixed } from './serialize.js';

/** Aedes' own CONNACK refusals (before authentication), by return code. */
const AEDES_REFUSALS: Record<number, RefusalReason> = {
  1: 'protocol-version',
  2: 'bad-client-id',
  3: 'server-unavailable',
  6: 'keepalive-limit',
};

const list = (...items: string[]): string[] => fixed(items);
/** ECS category and type lists, shared by every event (no allocation per event; serialised as usual). */
const NETWORK = list('network');
const SESSION = list('session');
const AUTHENTICATION = list('authentication');
const AUTH_SESSION = list('authentication', 'session');
const PROCESS = list('process');
const PROTOCOL_ALLOWED = list('protocol', 'allowed');
const PROTOCOL_DENIED = list('protocol', 'denied');
const PROTOCOL_ERROR = list('protocol', 'error');
const PROTOCOL = list('protocol');
const START_DENIED = list('start', 'denied');
const START_ALLOWED = list('start', 'allowed');
const START = list('start');
const END = list('end');
const CONNECTION_START = list('connection', 'start');
const CONNECTION_END = list('connection', 'end');

/** Topics the broker must never capture (its own reroute of denied publishes, the mqtt sink's topics). */
export interface HookOptions {
  wanted: (action: string) => boolean;
  /** capture_payload is not off. */
  keepPayload: boolean;
  ignoredTopics: ReadonlySet<string>;
  record: (e: CaptureEvent) => void;
  /**
   * Takes a publish-received as its bare facts (the capture thread builds its line; `build` makes
   * the event object if a listener wants it); false when the caller must record the event.
   */
  publishDirect(
    c: ClientHandle,
    conn: ConnInfo | undefined,
    user: string | undefined,
    p: PublishFacts,
    payload: Buffer,
    build: PublishBuilder,
  ): boolean;
}

/** Builds the publish-received event of a publish, as the hook records it. */
export type PublishBuilder = (
  c: ClientHandle,
  conn: ConnInfo | undefined,
  user: string | undefined,
  p: PublishFacts,
  payload: Buffer,
) => CaptureEvent;

/**
 * Subscribes to the broker's events and turns each into one capture event. Each
 * listener does a few object writes and hands the event to the pipeline; nothing is serialised
 * here. Returns the function that detaches every listener.
 */
export function attachHooks(h: CaptureHandle, f: EventFactory, o: HookOptions): () => void {
  const { broker } = h;
  const { record, wanted } = o;
  const detach: (() => void)[] = [];
  let failures = 0;
  // a hook runs inside Aedes' own handlers: whatever goes wrong in capture must not reach them
  const guard =
    <A extends unknown[]>(name: string, fn: (...args: A) => void) =>
    (...args: A) => {
      try {
        fn(...args);
      } catch (err) {
        if (failures++ % 1000 === 0)
          h.log.error({ name: 'capture', hook: name, err: (err as Error).message, failures }, 'a capture hook failed; the broker goes on');
      }
    };
  const on = <K extends keyof BrokerEvents>(name: K, fn: (...args: BrokerEvents[K]) => void) => {
    detach.push(broker.on(name, guard(name, fn)));
  };
  const client = (action: string, c: ClientHandle, category: string[], type: string[], outcome?: CaptureEvent['event']['outcome']) =>
    f.withClient(f.make(action, 'event', category, type, outcome), c, broker.connOf(c), broker.usernameOf(c));

  if (wanted('broker-starting'))
    on('broker-starting', (listeners) => {
      const e = f.make('broker-starting', 'event', PROCESS, START, 'success');
      e.mqprobe = {
        listeners: listeners.map(({ listener, port }) => ({
          bind: listener.bind ?? '',
          port,
          protocol: listener.protocol,
          tls: !!listener.tls.certfile,
        })),
      };
      record(e);
    });
  on('bridge-state', (b) => {
    if (!b.change || !wanted(`bridge-${b.change}`)) return;
    const connected = b.change === 'connected';
    const e = f.make(
      `bridge-${b.change}`,
      'event',
      NETWORK,
      connected ? CONNECTION_START : CONNECTION_END,
      b.change === 'connect-failed' ? 'failure' : 'success',
    );
    if (b.reason) e.event.reason = b.reason;
    e.mqprobe = { bridge: { connection: b.bridge, address: b.address, state: b.state, retry_in_s: b.retryIn } };
    record(e);
  });
  on('kafka-bridge-state', (b) => {
    const action = `kafka-bridge-${b.state}`;
    if ((b.state !== 'delivering' && b.state !== 'failing') || !wanted(action)) return;
    const e = f.make(
      action,
      'event',
      NETWORK,
      b.state === 'delivering' ? CONNECTION_START : CONNECTION_END,
      b.state === 'failing' ? 'failure' : 'success',
    );
    if (b.reason) e.event.reason = b.reason;
    e.mqprobe = { kafka_bridge: { name: b.bridge, state: b.state } };
    record(e);
  });
  if (wanted('broker-stopped')) on('broker-stopped', () => record(f.make('broker-stopped', 'event', PROCESS, END, 'success')));
  if (wanted('connection-opened'))
    on('connection-opened', (conn) => record(f.withConn(f.make('connection-opened', 'event', NETWORK, CONNECTION_START, 'success'), conn)));

  if (wanted('client-connected'))
    // on the CONNACK, not on client-ready: that comes only after a resumed session's queue
    // is sent, by when the client's first PUBLISH may already have been recorded
    on('connack-sent', (connack, c) => {
      if (connack.returnCode) return;
      const e = client('client-connected', c, AUTH_SESSION, START_ALLOWED, 'success');
      const m = e.mqtt!;
      m.protocol_version = protocolVersionOf(c);
      m.clean_session = cleanSessionOf(c);
      m.keepalive = keepaliveOf(c);
      m.reason_code = 0;
      record(e);
    });

  // the probe names the refusals of mqprobe's authentication; Aedes' own ones show only as a CONNACK
  const refused = new WeakSet<ClientHandle>();
  const refusal = (c: ClientHandle, code: number, reason: RefusalReason, username: string | undefined) => {
    const e = f.withClient(f.make('connection-refused', 'event', AUTHENTICATION, START_DENIED, 'failure'), c, broker.connOf(c), username);
    e.event.reason = reason;
    e.mqtt!.reason_code = code;
    const version = protocolVersionOf(c);
    if (version) e.mqtt!.protocol_version = version;
    record(e);
  };
  if (wanted('connection-refused')) {
    on('connection-refused', (c, code, reason, username) => {
      refused.add(c);
      refusal(c, code, reason, username);
    });
    on('connack-sent', (packet, c) => {
      const code = packet.returnCode ?? 0;
      if (code !== 0 && !refused.has(c)) refusal(c, code, AEDES_REFUSALS[code] ?? 'server-unavailable', undefined);
    });
  }

  if (wanted('client-disconnected'))
    on('disconnect-reason', (c, reason, err) => {
      const e = client('client-disconnected', c, SESSION, END, reason === 'client-disconnect' ? 'success' : 'unknown');
      e.event.reason = reason;
      if (err && reason === 'error') e.error = { message: err.message };
      record(e);
    });
  if (wanted('keepalive-timeout'))
    on('keepalive-timeout', (c) => {
      const e = client('keepalive-timeout', c, SESSION, END, 'failure');
      e.mqtt!.keepalive = keepaliveOf(c);
      record(e);
    });
  if (wanted('protocol-error'))
    on('protocol-error', (conn, c, err) => {
      const e = f.make('protocol-error', 'event', NETWORK, PROTOCOL_ERROR, 'failure');
      if (c) f.withClient(e, c, conn ?? broker.connOf(c), broker.usernameOf(c));
      else f.withConn(e, conn);
      if (e.mqtt && !e.mqtt.client_id) delete e.mqtt;
      e.error = { message: err.message, type: err.name };
      record(e);
    });

  // Aedes publishes a will as a publish of the closing client, after it has forgotten the will
  const wills = new WeakMap<ClientHandle, string>();
  const willsSeen = new WeakSet<ClientHandle>();
  const recordWill = (c: ClientHandle, will: { topic: string; qos: number; retain: boolean; payloadSize: number }) => {
    willsSeen.add(c);
    const e = client('will-published', c, NETWORK, PROTOCOL, 'success');
    e.mqtt!.will = { topic: will.topic, qos: will.qos, retain: will.retain, payload_size: will.payloadSize };
    e.mqtt!.topic = will.topic;
    record(e);
  };
  if (wanted('will-published')) {
    on('client-ready', (c) => {
      const topic = willTopicOf(c);
      if (topic !== undefined) wills.set(c, topic);
    });
    // the probe reports wills too; whichever comes first is recorded
    on('will-published', (c, will) => {
      if (!willsSeen.has(c)) recordWill(c, will);
    });
  }
  // the payload only as a reference: the policy copies and encodes it at flush time
  const buildPublish: PublishBuilder = (c, conn, user, p, payload) =>
    publishReceived(f, c, conn, user, p, payload.length, o.keepPayload ? payload : undefined);
  const isWill = (c: ClientHandle, p: PublishView) => isClosed(c) && wills.get(c) === p.topic && !willsSeen.has(c);

  if (wanted('publish-received') || wanted('will-published'))
    on('publish', (p, c) => {
      // client null: the broker's own publishes ($SYS, the mqtt sink), never "received"
      if (!c || o.ignoredTopics.has(p.topic)) return;
      if (isWill(c, p)) {
        if (wanted('will-published')) recordWill(c, { topic: p.topic, qos: p.qos, retain: p.retain, payloadSize: p.payload.length });
        return;
      }
      if (!wanted('publish-received')) return;
      const payload = typeof p.payload === 'string' ? Buffer.from(p.payload) : p.payload;
      const conn = broker.connOf(c);
      const user = broker.usernameOf(c);
      if (!o.publishDirect(c, conn, user, p, payload, buildPublish)) record(buildPublish(c, conn, user, p, payload));
    });
  if (wanted('publish-denied'))
    on('publish-denied', (c, p) => {
      const e = client('publish-denied', c, NETWORK, PROTOCOL_DENIED, 'failure');
      publishFields(e.mqtt!, p, p.payloadSize);
      record(e);
    });

  if (wanted('subscription-granted'))
    on('subscribe', (subs, c) => {
      for (const s of subs) {
        if (s.qos >= 128) continue; // refused: the probe reported it with the requested QoS
        const e = client('subscription-granted', c, NETWORK, PROTOCOL_ALLOWED, 'success');
        e.mqtt!.topic = s.topic;
        e.mqtt!.qos = s.qos;
        e.mqtt!.subscriptions = [{ topic: s.topic, qos: s.qos, granted_qos: s.qos }];
        record(e);
      }
    });
  if (wanted('subscription-denied'))
    on('subscription-denied', (c, s) => {
      const e = client('subscription-denied', c, NETWORK, PROTOCOL_DENIED, 'failure');
      e.mqtt!.topic = s.topic;
      e.mqtt!.qos = s.qos;
      e.mqtt!.subscriptions = [{ topic: s.topic, qos: s.qos, granted_qos: 128 }];
      e.mqtt!.reason_code = 128;
      record(e);
    });
  if (wanted('unsubscribed'))
    on('unsubscribe', (topics, c) => {
      for (const topic of topics) {
        const e = client('unsubscribed', c, NETWORK, PROTOCOL, 'success');
        e.mqtt!.topic = topic;
        record(e);
      }
    });

  if (wanted('ping-received')) on('ping', (_p, c) => record(client('ping-received', c, NETWORK, PROTOCOL, 'success')));
  if (wanted('publish-acknowledged'))
    on('ack', (p, c) => {
      const e = client('publish-acknowledged', c, NETWORK, PROTOCOL, 'success');
      // Aedes passes no packet when the acknowledged one is no longer in its store
      if (!p) return record(e);
      if (p.topic !== undefined) e.mqtt!.topic = p.topic;
      if (p.qos !== undefined) e.mqtt!.qos = p.qos;
      if (p.messageId !== undefined) e.mqtt!.message_id = p.messageId;
      record(e);
    });
  if (wanted('publish-delivered'))
    on('delivered', (p, c) => {
      if (o.ignoredTopics.has(p.topic)) return; // deliveries of capture events would capture themselves
      const e = client('publish-delivered', c, NETWORK, PROTOCOL, 'success');
      const m = e.mqtt!;
      m.topic = p.topic;
      m.qos = p.qos;
      m.retain = p.retain;
      m.payload_size = typeof p.payload === 'string' ? Buffer.byteLength(p.payload) : p.payload.length;
      record(e);
    });

  return () => {
    for (const d of detach) d();
  };
}

/** A publish-received event: built by the hook, or by the capture thread from the facts the hook sent it. */
export function publishReceived(
  f: EventFactory,
  c: ClientHandle,
  conn: ConnInfo | undefined,
  user: string | undefined,
  p: PublishFacts,
  size: number,
  payload: Buffer | undefined,
): CaptureEvent {
  const e = f.withClient(f.make('publish-received', 'event', NETWORK, PROTOCOL_ALLOWED, 'success'), c, conn, user);
  publishFields(e.mqtt!, p, size);
  if (payload) e.mqtt!.payload = payload;
  return e;
}

/** The PUBLISH header fields, in the same order for every publish event. */
function publishFields(m: MqttFields, p: PublishFacts, size: number): void {
  m.topic = p.topic;
  m.qos = p.qos;
  // a packet Aedes makes itself (a will) may have no dup flag: the event says false, as the capture thread's facts do
  m.retain = p.retain === true;
  m.dup = p.dup === true;
  if (p.messageId !== undefined) m.message_id = p.messageId;
  m.payload_size = size;
}
