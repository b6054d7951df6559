import type { ClientHandle } from '../broker/engine/client.js';
import type { ConnInfo } from '../broker/probe.js';
import { DATASET, ECS_VERSION, Notice, type CaptureEvent, type Observer } from './event.js';
import type { CaptureHandle } from './handle.js';
import { fixed, fixedRun, RUN, type FixedRun, type WithRun } from './serialize.js';

const ECS = fixed({ version: ECS_VERSION });
const NETWORK = fixed({ protocol: 'mqtt' as const, transport: 'tcp' as const });
const NETWORK_WS = fixed({ protocol: 'mqtt' as const, transport: 'tcp' as const, application: 'websocket' as const });

interface Identity {
  fields: Partial<CaptureEvent>;
  run?: FixedRun;
  /** The run with the user of the connection's client. */
  user?: { value: { name: string }; run?: FixedRun };
}

/** `::ffff:10.0.0.1` → `10.0.0.1`, so one client has one address whatever the socket family. */
export function plainIp(ip: string | undefined): string | undefined {
  return ip?.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

/** The notice of a client's event, with the identity its event would carry (capture/event.ts). */
export function noticeOf(action: string, c: ClientHandle, conn: ConnInfo | undefined, user: string | undefined): Notice {
  return new Notice(action, plainIp(conn?.remoteAddress) || undefined, user || undefined, c.id || undefined);
}

/**
 * Makes the skeleton of every event. The parts shared by many events (ecs, service, observer per
 * listener) are built once and shared, so the hot path writes a handful of properties.
 */
export class EventFactory {
  private readonly observer: Observer;
  private readonly service: CaptureEvent['service'];
  private readonly byListener = new Map<string, { observer: Observer; destination?: { port: number } }>();
  private readonly identities = new WeakMap<ConnInfo, Identity>();
  private readonly users = new WeakMap<ClientHandle, { name: string }>();
  private readonly eventRuns = new Map<
    string,
    (Pick<CaptureEvent['event'], 'kind' | 'category' | 'type' | 'outcome'> & { run: FixedRun })[]
  >();

  constructor(info: CaptureHandle['info']) {
    // every event carries these, so they hold only what tells brokers apart (each byte costs serialisation time)
    this.observer = fixed({ type: 'mqtt-broker', product: 'mqprobe', name: info.name, version: info.version });
    this.service = fixed({ type: 'mqtt', id: info.id });
  }

  /**
   * A new event: time now, identity, no sequence yet (the pipeline numbers what it records). The
   * `event` fields after id and sequence are the same for every event of one hook: one run.
   */
  make(
    action: string,
    kind: CaptureEvent['event']['kind'],
    category: string[] | undefined,
    type: string[] | undefined,
    outcome?: CaptureEvent['event']['outcome'],
  ): CaptureEvent {
    const event: CaptureEvent['event'] = { id: '', sequence: 0, kind, action, dataset: DATASET };
    if (category) event.category = category;
    if (type) event.type = type;
    if (outcome) event.outcome = outcome;
    const run = this.eventRun(event);
    if (run) (event as WithRun)[RUN] = run;
    return { '@timestamp': '', message: '', ecs: ECS, event, observer: this.observer, service: this.service };
  }

  private eventRun(event: CaptureEvent['event']): FixedRun | undefined {
    const { kind, action, category, type, outcome } = event;
    // an action has one or two shapes (success and failure): a short list, looked up by the action
    let runs = this.eventRuns.get(action);
    if (runs)
      for (const r of runs) if (r.kind === kind && r.category === category && r.type === type && r.outcome === outcome) return r.run;
    const run = fixedRun(Object.entries(event).slice(2));
    // a hook passes the same fixed category and type lists every time; other callers get no run
    if (!run || this.eventRuns.size >= 1024) return run;
    if (!runs) this.eventRuns.set(action, (runs = []));
    if (runs.length < 8) runs.push({ kind, category, type, outcome, run });
    return run;
  }

  /** Adds where the connection came from and which listener took it. */
  withConn(e: CaptureEvent, conn: ConnInfo | undefined): CaptureEvent {
    if (conn) this.addIdentity(e, this.identity(conn), undefined);
    return e;
  }

  /** Adds the client's connection, id and user. */
  withClient(e: CaptureEvent, client: ClientHandle, conn: ConnInfo | undefined, user: string | undefined): CaptureEvent {
    const u = user === undefined ? undefined : this.userOf(client, user);
    if (conn) this.addIdentity(e, this.identity(conn), u);
    else if (u) e.user = u;
    e.mqtt = { client_id: client.id };
    return e;
  }

  /** The connection's fields, then the user's, and the run the serializer writes them with. */
  private addIdentity(e: CaptureEvent, id: Identity, user: { name: string } | undefined): void {
    Object.assign(e, id.fields);
    if (user) e.user = user;
    (e as WithRun)[RUN] = user ? this.userRun(id, user) : id.run;
  }

  private userOf(client: ClientHandle, name: string): { name: string } {
    let u = this.users.get(client);
    if (u?.name !== name) {
      u = fixed({ name });
      this.users.set(client, u);
    }
    return u;
  }

  /** What every event of one connection carries (observer … tls), made once per connection, and its run for the serializer. */
  private identity(conn: ConnInfo): Identity {
    let id = this.identities.get(conn);
    if (!id) {
      const l = this.listener(conn);
      const fields: Partial<CaptureEvent> = { observer: l.observer, service: this.service };
      if (l.destination) fields.destination = l.destination;
      if (conn.remoteAddress !== undefined) fields.source = fixed({ ip: plainIp(conn.remoteAddress), port: conn.remotePort });
      if (conn.transport !== 'internal') fields.network = conn.transport === 'ws' || conn.transport === 'wss' ? NETWORK_WS : NETWORK;
      if (conn.tls) fields.tls = fixed(tlsFields(conn.tls));
      id = { fields, run: fixedRun(Object.entries(fields)) };
      this.identities.set(conn, id);
    }
    return id;
  }

  /** The connection's run followed by the user (addIdentity writes user right after the connection's fields). */
  private userRun(id: Identity, user: { name: string }): FixedRun | undefined {
    if (id.user?.value !== user) id.user = { value: user, run: fixedRun([...Object.entries(id.fields), ['user', user]]) };
    return id.user.run;
  }

  private listener(conn: ConnInfo): { observer: Observer; destination?: { port: number } } {
    const key = `${conn.transport} ${conn.listener.bind ?? '*'}:${conn.listenerPort}`;
    let l = this.byListener.get(key);
    if (!l) {
      l = {
        observer: fixed({ ...this.observer, ingress: { interface: { name: key } } }),
        destination: conn.transport === 'internal' ? undefined : fixed({ port: conn.listenerPort }),
      };
      this.byListener.set(key, l);
    }
    return l;
  }
}

/** ECS tls.* of a TLS connection: tls.version "1.3" and tls.version_protocol "tls" (Node says "TLSv1.3"). */
function tlsFields(t: NonNullable<ConnInfo['tls']>): NonNullable<CaptureEvent['tls']> {
  const tls: NonNullable<CaptureEvent['tls']> = { established: true };
  if (t.protocol) {
    tls.version = t.protocol.replace(/^TLSv/, '');
    tls.version_protocol = 'tls';
  }
  if (t.cipher) tls.cipher = t.cipher;
  if (t.subject || t.issuer || t.serial)
    tls.client = { subject: t.subject, issuer: t.issuer, x509: t.serial ? { serial_number: t.serial } : undefined };
  return tls;
}
