import type { BrokerEvents, PublishView, SubscriptionView } from '../broker/engine/api.js';
import {
  cleanSessionOf,
  clientDisconnectReasonOf,
  isClosed,
  keepaliveOf,
  protocolVersionOf,
  requestedQosOf,
  serverDisconnectReasonOf,
  unsubackReasonsOf,
  willTopicOf,
  type ClientHandle,
} from '../broker/engine/client.js';
import type { ConnInfo, RefusalReason } from '../broker/probe.js';
import type { EventFactory } from './build.js';
import { Notice, type CaptureEvent, type MqttFields } from './event.js';
import { connectFields, refusedConnectFields, hasPublishProperties, publishProperties, sharedGroup, subscriptionEntry } from './mqtt5.js';
import type { CaptureHandle } from './handle.js';
import type { PublishFacts } from './offload/tape.js';
import { fixed } from './serialize.js';
import { noticeOf, plainIp } from './build.js';

/** Aedes' own CONNACK refusals (before authentication), by return code. */
const AEDES_REFUSALS: Record<number, RefusalReason> = {
  1: 'protocol-version',
  2: 'bad-client-id',
  3: 'server-unavailable',
  6: 'keepalive-limit',
};

/** MQTT 5 refusals only Aedes makes: CONNACK 0x82, and 0x8C for enhanced authentication (not supported). */
type Refusal = RefusalReason | 'protocol-error' | 'bad-authentication-method';

/** The same for MQTT 5 CONNACK reason codes. */
const AEDES_REFUSALS_V5: Record<number, Refusal> = {
  0x82: 'protocol-error',
  0x84: 'protocol-version',
  0x85: 'bad-client-id',
  0x88: 'server-unavailable',
  0x89: 'server-limit',
  0x8c: 'bad-authentication-method',
};

/** ACL refusals on the wire: MQTT 5 says "not authorized" (0x87) where 3.1.1 has only "failure" (0x80). */
const NOT_AUTHORIZED = 0x87;

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
const AUTH_WEB = list('authentication', 'web');
const ACCESS_DENIED = list('access', 'denied');

/** Topics the broker must never capture (its own reroute of denied publishes, the mqtt sink's topics). */
export interface HookOptions {
  wanted: (action: string) => boolean;
  /** capture_payload is not off. */
  keepPayload: boolean;
  ignoredTopics: ReadonlySet<string>;
  record: (e: CaptureEvent) => void;
  /** True while an event may be handed over as a notice instead (`note`): no sink needs its line, every listener takes notices. */
  notices: () => boolean;
  note: (n: Notice) => void;
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
 * here. While `notices()` says so, the per-client events are handed over as notices instead: the
 * facts of the event that detection observes, no event object. Returns the function that detaches
 * every listener.
 */
export function attachHooks(h: CaptureHandle, f: EventFactory, o: HookOptions): () => void {
  const { broker } = h;
  const { record, wanted } = o;
  const detach: (() => void)[] = [];
  let failures = 0;
  // a hook runs inside Aedes' own handlers: whatever goes wrong in capture must not reach them
  // four fixed parameters (no broker event has more), not rest ones: no array per event in a publish flood
  const guard = <A extends unknown[]>(name: string, fn: (...args: A) => void) => {
    const call = fn as unknown as (a: unknown, b: unknown, c: unknown, d: unknown) => void;
    return ((a: unknown, b: unknown, c: unknown, d: unknown) => {
      try {
        call(a, b, c, d);
      } catch (err) {
        if (failures++ % 1000 === 0)
          h.log.error({ name: 'capture', hook: name, err: (err as Error).message, failures }, 'a capture hook failed; the broker goes on');
      }
    }) as unknown as (...args: A) => void;
  };
  const on = <K extends keyof BrokerEvents>(name: K, fn: (...args: BrokerEvents[K]) => void) => {
    detach.push(broker.on(name, guard(name, fn)));
  };
  const client = (action: string, c: ClientHandle, category: string[], type: string[], outcome?: CaptureEvent['event']['outcome']) =>
    f.withClient(f.make(action, 'event', category, type, outcome), c, broker.connOf(c), broker.usernameOf(c));
  /** The notice of a client's event when notices are wanted, else undefined (the hook makes the event). */
  const notice = (action: string, c: ClientHandle, user = broker.usernameOf(c)) =>
    o.notices() ? noticeOf(action, c, broker.connOf(c), user) : undefined;
  const { note } = o;

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
    on('connection-opened', (conn) => {
      if (o.notices()) note(new Notice('connection-opened', plainIp(conn.remoteAddress) || undefined, undefined, undefined));
      else record(f.withConn(f.make('connection-opened', 'event', NETWORK, CONNECTION_START, 'success'), conn));
    });

  if (wanted('client-connected'))
    // on the CONNACK, not on client-ready: that comes only after a resumed session's queue
    // is sent, by when the client's first PUBLISH may already have been recorded
    on('connack-sent', (connack, c) => {
      if (connack.returnCode || connack.reasonCode) return;
      const n = notice('client-connected', c);
      if (n) {
        n.reasonCode = 0;
        return note(n);
      }
      const e = client('client-connected', c, AUTH_SESSION, START_ALLOWED, 'success');
      const m = e.mqtt!;
      m.protocol_version = protocolVersionOf(c);
      m.clean_session = cleanSessionOf(c);
      m.keepalive = keepaliveOf(c);
      m.reason_code = 0;
      connectFields(m, c);
      record(e);
    });

  // the probe names the refusals of mqprobe's authentication; Aedes' own ones show only as a CONNACK
  const refused = new WeakMap<ClientHandle, { reason: RefusalReason; username: string | undefined; closed?: true }>();
  /** `code` undefined: the connection was closed before any CONNACK (detect_ban_answer close). */
  const refusal = (
    c: ClientHandle,
    code: number | undefined,
    reason: Refusal,
    username: string | undefined,
    version = protocolVersionOf(c),
  ) => {
    const n = notice('connection-refused', c, username);
    if (n) {
      n.reason = reason;
      n.reasonCode = code;
      return note(n);
    }
    const e = f.withClient(f.make('connection-refused', 'event', AUTHENTICATION, START_DENIED, 'failure'), c, broker.connOf(c), username);
    e.event.reason = reason;
    if (code === undefined) e.mqprobe = { closed_before_connack: true };
    else e.mqtt!.reason_code = code;
    if (version) e.mqtt!.protocol_version = version;
    if (version === 5) refusedConnectFields(e.mqtt!, c);
    record(e);
  };
  if (wanted('connection-refused')) {
    on('connection-refused', (c, code, reason, username) => {
      // an MQTT 5 refusal is recorded with the reason code its CONNACK carries (the probe knows the 3.1.1 one);
      // one closed without a CONNACK is recorded at once, without a code
      if (protocolVersionOf(c) === 5 && code !== undefined) refused.set(c, { reason, username });
      else {
        refused.set(c, code === undefined ? { reason, username: undefined, closed: true } : { reason, username: undefined });
        refusal(c, code, reason, username);
      }
    });
    on('connack-sent', (packet, c) => {
      const v5 = packet.reasonCode !== undefined;
      const code = (v5 ? packet.reasonCode : packet.returnCode) ?? 0;
      if (code === 0) return;
      const known = refused.get(c);
      // the engine reports the CONNACK it wrote to a connection already closed as sent: none left
      if (known?.closed) return;
      if (v5) refusal(c, code, known?.reason ?? AEDES_REFUSALS_V5[code] ?? 'server-unavailable', known?.username, 5);
      else if (!known) refusal(c, code, AEDES_REFUSALS[code] ?? 'server-unavailable', undefined);
    });
  }

  if (wanted('client-disconnected'))
    on('disconnect-reason', (c, reason, err) => {
      const n = notice('client-disconnected', c);
      if (n) {
        n.reason = reason;
        return note(n);
      }
      const e = client('client-disconnected', c, SESSION, END, reason === 'client-disconnect' ? 'success' : 'unknown');
      e.event.reason = reason;
      if (err && reason === 'error') e.error = { message: err.message };
      const sent = clientDisconnectReasonOf(c);
      if (sent !== undefined) e.mqtt!.reason_code = sent;
      const server = serverDisconnectReasonOf(c);
      if (server !== undefined) e.mqtt!.server_reason_code = server;
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

  if (wanted('http-refused'))
    on('http-refused', (r) => {
      const e = f.make('http-refused', 'event', AUTH_WEB, ACCESS_DENIED, 'failure');
      e.event.reason = r.reason;
      if (r.remoteAddress !== undefined) e.source = { ip: plainIp(r.remoteAddress), port: r.remotePort };
      if (r.localPort !== undefined) e.destination = { port: r.localPort };
      if (r.username !== undefined) e.user = { name: r.username };
      e.http = { request: { method: r.method }, response: { status_code: r.status } };
      e.url = { path: r.path };
      if (r.suppressed) e.mqprobe = { http: { suppressed: r.suppressed } };
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
  const buildPublish5 = (c: ClientHandle, conn: ConnInfo | undefined, user: string | undefined, p: PublishView, payload: Buffer) => {
    const e = buildPublish(c, conn, user, p, payload);
    publishProperties(e.mqtt!, p.properties, o.keepPayload);
    return e;
  };
  const isWill = (c: ClientHandle, p: PublishView) => isClosed(c) && wills.get(c) === p.topic && !willsSeen.has(c);

  // asked once: the publish hook runs for every message
  const wantPublish = wanted('publish-received');
  const wantWill = wanted('will-published');
  if (wantPublish || wantWill)
    on('publish', (p, c) => {
      // client null: the broker's own publishes ($SYS, the mqtt sink), never "received"
      if (!c || o.ignoredTopics.has(p.topic)) return;
      if (isWill(c, p)) {
        if (wantWill) recordWill(c, { topic: p.topic, qos: p.qos, retain: p.retain, payloadSize: p.payload.length });
        return;
      }
      if (!wantPublish) return;
      const payload = typeof p.payload === 'string' ? Buffer.from(p.payload) : p.payload;
      const conn = broker.connOf(c);
      const user = broker.usernameOf(c);
      // MQTT 5 properties need the event (the capture thread's facts have no room for them), unless it is a notice
      if (!o.notices() && hasPublishProperties(p)) record(buildPublish5(c, conn, user, p, payload));
      else if (!o.publishDirect(c, conn, user, p, payload, buildPublish)) record(buildPublish(c, conn, user, p, payload));
    });
  if (wanted('publish-denied'))
    on('publish-denied', (c, p) => {
      const n = notice('publish-denied', c);
      if (n) {
        n.topic = p.topic || undefined;
        n.payloadSize = p.payloadSize;
        if (p.qos > 0 && protocolVersionOf(c) === 5) n.reasonCode = NOT_AUTHORIZED;
        return note(n);
      }
      const e = client('publish-denied', c, NETWORK, PROTOCOL_DENIED, 'failure');
      publishFields(e.mqtt!, p, p.payloadSize);
      // an MQTT 5 client's QoS 1/2 publish gets its PUBACK/PUBREC with the refusal's reason code
      if (p.qos > 0 && protocolVersionOf(c) === 5) e.mqtt!.reason_code = NOT_AUTHORIZED;
      record(e);
    });

  const subscriptionEvent = (c: ClientHandle, s: SubscriptionView, requested: number, granted: number) => {
    const v5 = protocolVersionOf(c) === 5;
    const denied = granted >= 128;
    const n = notice(denied ? 'subscription-denied' : 'subscription-granted', c);
    if (n) {
      n.topic = s.topic || undefined;
      // as detection reads the event: an entry without a filter is none
      n.subscriptions = s.topic ? [{ filter: s.topic, denied, code: granted }] : [];
      if (denied || v5) n.reasonCode = granted;
      return note(n);
    }
    const e = denied
      ? client('subscription-denied', c, NETWORK, PROTOCOL_DENIED, 'failure')
      : client('subscription-granted', c, NETWORK, PROTOCOL_ALLOWED, 'success');
    const m = e.mqtt!;
    m.topic = s.topic;
    m.qos = requested;
    m.subscriptions = [subscriptionEntry(s, granted, v5)];
    if (denied || v5) m.reason_code = granted;
    const group = sharedGroup(s.topic);
    if (group !== undefined) m.shared_group = group;
    if (s.subscriptionIdentifier !== undefined && v5) m.subscription_identifier = s.subscriptionIdentifier;
    record(e);
  };
  // the probe reports ACL refusals with the requested QoS; the subscribe event has the others (MQTT 5: 0x9E …)
  const aclDenied = new WeakSet<SubscriptionView>();
  if (wanted('subscription-granted') || wanted('subscription-denied'))
    on('subscribe', (subs, c) => {
      const v5 = protocolVersionOf(c) === 5;
      for (const s of subs) {
        const denied = s.qos >= 128;
        if (denied ? aclDenied.has(s) || !wanted('subscription-denied') : !wanted('subscription-granted')) continue;
        // mqtt.qos: the granted QoS of a granted subscription (as for 3.1.1), the requested one of a refused one
        subscriptionEvent(c, s, denied && v5 ? (requestedQosOf(s) ?? s.qos) : s.qos, s.qos);
      }
    });
  if (wanted('subscription-denied'))
    on('subscription-denied', (c, s) => {
      aclDenied.add(s);
      subscriptionEvent(c, s, s.qos, protocolVersionOf(c) === 5 ? NOT_AUTHORIZED : 128);
    });
  if (wanted('unsubscribed'))
    on('unsubscribe', (topics, c) => {
      const codes = protocolVersionOf(c) === 5 ? unsubackReasonsOf(c) : undefined;
      // the engine removes a clean session's subscriptions after its connection closed: no UNSUBSCRIBE was sent
      const sessionEnded = isClosed(c);
      topics.forEach((topic, i) => {
        const n = notice('unsubscribed', c);
        if (n) {
          n.topic = topic || undefined;
          if (sessionEnded) n.reason = 'session-ended';
          n.reasonCode = codes?.[i];
          return note(n);
        }
        const e = client('unsubscribed', c, NETWORK, PROTOCOL, 'success');
        if (sessionEnded) e.event.reason = 'session-ended';
        e.mqtt!.topic = topic;
        if (codes?.[i] !== undefined) e.mqtt!.reason_code = codes[i];
        const group = sharedGroup(topic);
        if (group !== undefined) e.mqtt!.shared_group = group;
        record(e);
      });
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
