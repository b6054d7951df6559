import type { Aedes, Client, Subscription } from 'aedes';
import type { ConnInfo, ProbeEvents, RefusalReason } from '../broker/probe.js';
import type { EventFactory } from './build.js';
import type { CaptureEvent, MqttFields } from './event.js';
import type { CaptureHandle } from './handle.js';
import type { PublishFacts } from './offload/tape.js';
import { fixed } from './serialize.js';

/** Aedes' own CONNACK refusals (before authentication), by return code. */
const AEDES_REFUSALS: Record<number, RefusalReason> = { 1: 'protocol-version', 2: 'bad-client-id', 3: 'server-unavailable', 6: 'keepalive-limit' };

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

type AedesPacket = { topic: string; qos: number; retain: boolean; dup: boolean; messageId?: number; payload: Buffer | string };
type WithInternals = Client & { _keepaliveInterval?: number; deliver0?: Deliver; deliverQoS?: Deliver };
type Deliver = (packet: AedesPacket, cb: () => void) => void;

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
  publishDirect(c: Client, conn: ConnInfo | undefined, user: string | undefined, p: PublishFacts, payload: Buffer, build: PublishBuilder): boolean;
}

/** Builds the publish-received event of a publish, as the hook records it. */
export type PublishBuilder = (c: Client, conn: ConnInfo | undefined, user: string | undefined, p: PublishFacts, payload: Buffer) => CaptureEvent;

/**
 * Subscribes to Aedes' events and the broker probe and turns each into one capture event. Each
 * listener does a few object writes and hands the event to the pipeline; nothing is serialised
 * here. Returns the function that detaches every listener.
 */
export function attachHooks(h: CaptureHandle, f: EventFactory, o: HookOptions): () => void {
  const { aedes, probe } = h;
  const { record, wanted } = o;
  const detach: (() => void)[] = [];
  let failures = 0;
  // a hook runs inside Aedes' own handlers: whatever goes wrong in capture must not reach them
  const guard = <A extends unknown[]>(name: string, fn: (...args: A) => void) => (...args: A) => {
    try {
      fn(...args);
    } catch (err) {
      if (failures++ % 1000 === 0) h.log.error({ name: 'capture', hook: name, err: (err as Error).message, failures }, 'a capture hook failed; the broker goes on');
    }
  };
  const onAedes = (name: string, fn: (...args: never[]) => void) => {
    const g = guard(name, fn);
    (aedes as unknown as { on(n: string, f: unknown): void }).on(name, g);
    detach.push(() => (aedes as unknown as { off(n: string, f: unknown): void }).off(name, g));
  };
  const onProbe = <K extends keyof ProbeEvents>(name: K, fn: (...args: ProbeEvents[K]) => void) => {
    const g = guard(name, fn);
    probe.on(name, g as never);
    detach.push(() => probe.off(name, g as never));
  };
  const client = (action: string, c: Client, category: string[], type: string[], outcome?: CaptureEvent['event']['outcome']) =>
    f.withClient(f.make(action, 'event', category, type, outcome), c, h.connOf(c), h.usernameOf(c));

  if (wanted('broker-starting'))
    onProbe('broker-starting', (listeners) => {
      const e = f.make('broker-starting', 'event', PROCESS, START, 'success');
      e.mqprobe = { listeners: listeners.map(({ listener, port }) => ({ bind: listener.bind ?? '', port, protocol: listener.protocol, tls: !!listener.tls.certfile })) };
      record(e);
    });
  if (wanted('broker-stopped')) onProbe('broker-stopped', () => record(f.make('broker-stopped', 'event', PROCESS, END, 'success')));
  if (wanted('connection-opened'))
    onProbe('connection-opened', (conn) => record(f.withConn(f.make('connection-opened', 'event', NETWORK, CONNECTION_START, 'success'), conn)));

  if (wanted('client-connected'))
    // on the CONNACK, not on Aedes' clientReady: that comes only after a resumed session's queue
    // is sent, by when the client's first PUBLISH may already have been recorded
    onAedes('connackSent', (connack: { returnCode?: number }, c: WithInternals) => {
      if (connack.returnCode) return;
      const e = client('client-connected', c, AUTH_SESSION, START_ALLOWED, 'success');
      const m = e.mqtt!;
      m.protocol_version = c.version;
      m.clean_session = c.clean;
      const ki = c._keepaliveInterval ?? -1;
      m.keepalive = ki > 0 ? Math.round((ki - 1) / 1500) : 0;
      m.reason_code = 0;
      record(e);
    });

  // the probe names the refusals of mqprobe's authentication; Aedes' own ones show only as a CONNACK
  const refused = new WeakSet<Client>();
  const refusal = (c: Client, code: number, reason: RefusalReason, username: string | undefined) => {
    const e = f.withClient(f.make('connection-refused', 'event', AUTHENTICATION, START_DENIED, 'failure'), c, h.connOf(c), username);
    e.event.reason = reason;
    e.mqtt!.reason_code = code;
    if (c.version) e.mqtt!.protocol_version = c.version;
    record(e);
  };
  if (wanted('connection-refused')) {
    onProbe('connection-refused', (c, code, reason, username) => {
      refused.add(c);
      refusal(c, code, reason, username);
    });
    onAedes('connackSent', (packet: { returnCode?: number }, c: Client) => {
      const code = packet.returnCode ?? 0;
      if (code !== 0 && !refused.has(c)) refusal(c, code, AEDES_REFUSALS[code] ?? 'server-unavailable', undefined);
    });
  }

  if (wanted('client-disconnected'))
    onProbe('disconnect-reason', (c, reason, err) => {
      const e = client('client-disconnected', c, SESSION, END, reason === 'client-disconnect' ? 'success' : 'unknown');
      e.event.reason = reason;
      if (err && reason === 'error') e.error = { message: err.message };
      record(e);
    });
  if (wanted('keepalive-timeout'))
    onAedes('keepaliveTimeout', (c: WithInternals) => {
      const e = client('keepalive-timeout', c, SESSION, END, 'failure');
      const ki = c._keepaliveInterval ?? -1;
      e.mqtt!.keepalive = ki > 0 ? Math.round((ki - 1) / 1500) : 0;
      record(e);
    });
  if (wanted('protocol-error'))
    onProbe('protocol-error', (conn: ConnInfo | undefined, c: Client | undefined, err: Error) => {
      const e = f.make('protocol-error', 'event', NETWORK, PROTOCOL_ERROR, 'failure');
      if (c) f.withClient(e, c, conn ?? h.connOf(c), h.usernameOf(c));
      else f.withConn(e, conn);
      if (e.mqtt && !e.mqtt.client_id) delete e.mqtt;
      e.error = { message: err.message, type: err.name };
      record(e);
    });

  // Aedes publishes a will as a publish of the closing client, after it has forgotten the will
  const wills = new WeakMap<Client, string>();
  const willsSeen = new WeakSet<Client>();
  const recordWill = (c: Client, will: { topic: string; qos: number; retain: boolean; payloadSize: number }) => {
    willsSeen.add(c);
    const e = client('will-published', c, NETWORK, PROTOCOL, 'success');
    e.mqtt!.will = { topic: will.topic, qos: will.qos, retain: will.retain, payload_size: will.payloadSize };
    e.mqtt!.topic = will.topic;
    record(e);
  };
  if (wanted('will-published')) {
    onAedes('clientReady', (c: WithInternals) => {
      const w = (c as { will?: { topic?: string } | null }).will;
      if (w?.topic !== undefined) wills.set(c, w.topic);
    });
    // the probe reports wills too; whichever comes first is recorded
    onProbe('will-published', (c, will) => {
      if (!willsSeen.has(c)) recordWill(c, will);
    });
  }
  // the payload only as a reference: the policy copies and encodes it at flush time
  const buildPublish: PublishBuilder = (c, conn, user, p, payload) => publishReceived(f, c, conn, user, p, payload.length, o.keepPayload ? payload : undefined);
  const isWill = (c: Client, p: AedesPacket) => (c as { closed?: boolean }).closed === true && wills.get(c) === p.topic && !willsSeen.has(c);

  if (wanted('publish-received') || wanted('will-published'))
    onAedes('publish', (p: AedesPacket, c: Client | null) => {
      // client null: the broker's own publishes ($SYS, the mqtt sink), never "received"
      if (!c || o.ignoredTopics.has(p.topic)) return;
      if (isWill(c, p)) {
        if (wanted('will-published')) recordWill(c, { topic: p.topic, qos: p.qos, retain: p.retain, payloadSize: p.payload.length });
        return;
      }
      if (!wanted('publish-received')) return;
      const payload = typeof p.payload === 'string' ? Buffer.from(p.payload) : p.payload;
      const conn = h.connOf(c);
      const user = h.usernameOf(c);
      if (!o.publishDirect(c, conn, user, p, payload, buildPublish)) record(buildPublish(c, conn, user, p, payload));
    });
  if (wanted('publish-denied'))
    onProbe('publish-denied', (c, p) => {
      const e = client('publish-denied', c, NETWORK, PROTOCOL_DENIED, 'failure');
      publishFields(e.mqtt!, p, p.payloadSize);
      record(e);
    });

  if (wanted('subscription-granted'))
    onAedes('subscribe', (subs: Subscription[], c: Client) => {
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
    onProbe('subscription-denied', (c, s) => {
      const e = client('subscription-denied', c, NETWORK, PROTOCOL_DENIED, 'failure');
      e.mqtt!.topic = s.topic;
      e.mqtt!.qos = s.qos;
      e.mqtt!.subscriptions = [{ topic: s.topic, qos: s.qos, granted_qos: 128 }];
      e.mqtt!.reason_code = 128;
      record(e);
    });
  if (wanted('unsubscribed'))
    onAedes('unsubscribe', (topics: string[], c: Client) => {
      for (const topic of topics) {
        const e = client('unsubscribed', c, NETWORK, PROTOCOL, 'success');
        e.mqtt!.topic = topic;
        record(e);
      }
    });

  if (wanted('ping-received')) onAedes('ping', (_p: unknown, c: Client) => record(client('ping-received', c, NETWORK, PROTOCOL, 'success')));
  if (wanted('publish-acknowledged'))
    onAedes('ack', (p: { cmd?: string; topic?: string; messageId?: number; qos?: number } | null | undefined, c: Client) => {
      const e = client('publish-acknowledged', c, NETWORK, PROTOCOL, 'success');
      // Aedes passes no packet when the acknowledged one is no longer in its store
      if (!p) return record(e);
      if (p.topic !== undefined) e.mqtt!.topic = p.topic;
      if (p.qos !== undefined) e.mqtt!.qos = p.qos;
      if (p.messageId !== undefined) e.mqtt!.message_id = p.messageId;
      record(e);
    });
  if (wanted('publish-delivered')) onAedes('client', (c: WithInternals) => watchDeliveries(c, (p) => {
    if (o.ignoredTopics.has(p.topic)) return; // deliveries of capture events would capture themselves
    const e = client('publish-delivered', c, NETWORK, PROTOCOL, 'success');
    const m = e.mqtt!;
    m.topic = p.topic;
    m.qos = p.qos;
    m.retain = p.retain;
    m.payload_size = typeof p.payload === 'string' ? Buffer.byteLength(p.payload) : p.payload.length;
    record(e);
  }));

  return () => {
    for (const d of detach) d();
  };
}

/** A publish-received event: built by the hook, or by the capture thread from the facts the hook sent it. */
export function publishReceived(f: EventFactory, c: Client, conn: ConnInfo | undefined, user: string | undefined, p: PublishFacts, size: number, payload: Buffer | undefined): CaptureEvent {
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

/**
 * Aedes has no event per outbound delivery: wrap the client's two delivery functions (the
 * subscribe handler looks them up when a subscription is made, after the client event).
 */
function watchDeliveries(c: WithInternals, seen: (p: AedesPacket) => void): void {
  for (const name of ['deliver0', 'deliverQoS'] as const) {
    const original = c[name];
    if (!original) continue;
    c[name] = function (this: unknown, packet, cb) {
      // deliverQoS hands QoS 0 packets on to deliver0, which sees them; before its CONNACK a client
      // gets nothing (broker/persistence/connack-first.ts skips it; a QoS 1/2 message comes later from its queue)
      if ((name === 'deliver0' || packet.qos > 0) && (c as { connackSent?: boolean }).connackSent) seen(packet);
      return original.call(this, packet, cb);
    };
  }
}
