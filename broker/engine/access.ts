import { randomUUID } from 'node:crypto';
import type { Aedes, AedesOptions, Client, AuthenticateError } from './vendor/aedes/aedes.js';
import type { BrokerConfig, ListenerConfig, SecurityConfig } from '../config/types.js';
import { connInfo, type BrokerProbe, type RefusalReason } from '../probe.js';
import { isClosed, protocolVersionOf as versionOf, type ClientHandle } from './client.js';
import { watchMqtt5 } from './mqtt5-facts.js';
import { survivable } from './disconnects.js';
import { describeSkippedLine, loadPasswordFile, type PasswordFile } from '../auth/password-file.js';
import { loadAclFile, type AclFile } from '../auth/acl-file.js';
import { CONTROL_TOPIC, DynamicSecurity, RESPONSE_TOPIC } from '../auth/dynamic-security/dynamic-security.js';

/** Denied publishes are rerouted here and never delivered: Aedes can only refuse a publish by disconnecting. */
export const DENIED_TOPIC = '$mqprobe/denied';
/** Publishes to `$CONTROL/…` end here once handled: Mosquitto passes them to its plugins, never to subscribers. */
const CONTROL_DONE_TOPIC = '$mqprobe/control';

/** A bridge's state notification (`$SYS/broker/connection/<client id>/state`), which a remote bridge writes here. */
const BRIDGE_STATE_TOPIC = /^\$SYS\/broker\/connection\/[^/#+]+\/state$/;

/**
 * Topics no network client may publish to, whatever the ACL says (Mosquitto's acl__check_dollar):
 * `$SYS` is the broker's own, but for bridges' state notifications (the ACL still decides those),
 * and `$share/` names a subscription, never a topic.
 */
export function reservedForClients(topic: string): boolean {
  if (topic.startsWith('$share/')) return true;
  return (topic === '$SYS' || topic.startsWith('$SYS/')) && !BRIDGE_STATE_TOPIC.test(topic);
}

/** `$share/<group>/` and the filter after it; a plain filter has no prefix (the engine refuses malformed ones). */
function splitShared(topic: string): { prefix: string; filter: string } {
  const groupEnd = topic.startsWith('$share/') ? topic.indexOf('/', '$share/'.length) : -1;
  return groupEnd < 0 ? { prefix: '', filter: topic } : { prefix: topic.slice(0, groupEnd + 1), filter: topic.slice(groupEnd + 1) };
}

/**
 * Messages that stay inside the engine, delivered to no client and no in-process subscriber: denied
 * publishes rerouted to `$mqprobe/…`, and Aedes' own `$SYS/<broker id>/…` (new/clients,
 * disconnect/clients, new/subscribes, heartbeat, birth), which carry client ids and subscription lists
 * and coordinate brokers over a shared emitter. Mosquitto publishes only `$SYS/broker/…`, and no client ids.
 */
export function engineInternal(topic: string): boolean {
  return topic.startsWith('$mqprobe/') || (topic.startsWith('$SYS/') && !topic.startsWith('$SYS/broker/'));
}

/**
 * MQTT-1.5.3-2 forbids U+0000 in strings; Mosquitto's UTF-8 check also refuses the C0 and C1 control
 * characters in a client id (they break logs and ACL patterns).
 */
const CONTROL_CHARACTER = /\p{Cc}/u; // U+0000-U+001F and U+007F-U+009F
export function hasControlCharacter(s: string): boolean {
  return CONTROL_CHARACTER.test(s);
}

/** The client id the ACL sees for a user of the HTTP listener: `$` and `/` make it match no pattern's `%c` grant. */
const NO_CLIENT_ID = '$http/no-client-id';

/** What mqprobe knows about a client beyond Aedes' own fields. */
export interface ClientMeta {
  username?: string;
  listener?: ListenerConfig;
  clientIdWasEmpty: boolean;
  clean: boolean;
  internal: boolean;
  /** An MQTT 5 CONNECT on a listener whose accept_protocol_versions leaves 5 out. */
  versionRefused?: boolean;
}
const META = Symbol.for('mqprobe.client');

const COUNTED = Symbol('mqprobe.listenerCount');
interface ConnectionCount {
  n: number;
}
interface Counted {
  [COUNTED]: ConnectionCount;
}
function uncount(this: Counted): void {
  this[COUNTED].n--;
}
export function clientMeta(client: ClientHandle): ClientMeta | undefined {
  return (client as unknown as Record<symbol, ClientMeta>)[META];
}

/** The facts of a CONNECT (or a live session) a guard or a disconnect looks at. */
export interface ConnectFacts {
  ip?: string;
  clientId: string;
  username?: string;
}

/** What a connect guard says: let it through (undefined), refuse with CONNACK, or close before any CONNACK. */
export type ConnectGuard = (who: ConnectFacts) => 'connack' | 'close' | undefined;

interface LoadedSecurity {
  allowAnonymous: boolean;
  passwords?: PasswordFile;
  /** The ACL file, or the dynamic security plugin's ACLs. */
  acl?: Pick<AclFile, 'check'>;
  dynsec?: DynamicSecurity;
}

/** Mosquitto 2.0 return codes for MQTT 3.1.1 CONNACK. */
const CODE: Record<RefusalReason, number> = {
  'protocol-version': 1,
  'bad-client-id': 2,
  'server-unavailable': 3,
  'server-limit': 3,
  'keepalive-limit': 2,
  // Mosquitto 2.0 answers "not authorised" for wrong passwords too
  'bad-credentials': 5,
  'unknown-user': 5,
  'anonymous-not-allowed': 5,
  'not-authorized': 5,
  banned: 5,
};

/**
 * MQTT 5 CONNACK reason codes where the return code's mapping (1 → 0x84, 2 → 0x85, 3 → 0x88, 4 → 0x86,
 * 5 → 0x87) is not what Mosquitto 2.0 answers or Aedes cannot map it (it turns return code 1 into 5).
 */
const V5_CODE: Partial<Record<RefusalReason, number>> = { 'protocol-version': 0x84 };

function refusal(reason: RefusalReason): AuthenticateError {
  const err = new Error(`connection refused: ${reason}`) as AuthenticateError;
  (err as { returnCode: number }).returnCode = CODE[reason];
  // used for MQTT 5 clients only (vendored engine, patch 06)
  if (V5_CODE[reason] !== undefined) (err as { reasonCode?: number }).reasonCode = V5_CODE[reason];
  return err;
}

/**
 * Authentication and authorisation with Mosquitto 2.0 semantics: password_file, acl_file,
 * allow_anonymous (global or per listener), client id rules, max_connections, mount_point,
 * message_size_limit and retain_available, as Aedes hooks.
 */
/** A parser 'packet' listener shared by every connection: `this` is the parser, whose `client` the engine sets. */
function forParserClient<P>(fn: (client: Client, packet: P) => void): (this: { client: Client }, packet: P) => void {
  return function (packet) {
    fn(this.client, packet);
  };
}

export class Access {
  private global: LoadedSecurity = { allowAnonymous: false };
  private perListener = new Map<ListenerConfig, LoadedSecurity>();
  /** Connections per listener (max_connections): a counter each connection's socket points to. */
  private connected = new Map<ListenerConfig, ConnectionCount>();
  /** Clients whose session a newer connection with the same id takes over. */
  readonly takenOver = new WeakSet<Client>();
  private connectGuard?: ConnectGuard;

  constructor(
    private readonly config: BrokerConfig,
    private readonly probe: BrokerProbe,
    /** Where the dynamic security plugin's lines go: one per command (info, as Mosquitto), save failures (error). */
    private readonly log: { info(line: string): void; error(line: string): void } = { info: () => undefined, error: () => undefined },
  ) {}

  /**
   * Reads password and ACL files; called at start and on SIGHUP (a bad file keeps the old one on
   * reload). Returns one line per password file line that gave no user, for the log.
   */
  async load(): Promise<string[]> {
    const load = async (s: SecurityConfig): Promise<LoadedSecurity> => {
      const dynsec = s.dynamicSecurityFile ? this.dynamicSecurity(s.dynamicSecurityFile) : undefined;
      return {
        allowAnonymous: s.allowAnonymous ?? false,
        passwords: s.passwordFile ? await loadPasswordFile(s.passwordFile) : undefined,
        acl: s.aclFile ? await loadAclFile(s.aclFile) : dynsec,
        dynsec,
      };
    };
    const global = await load(this.config.security);
    const per = new Map<ListenerConfig, LoadedSecurity>();
    if (this.config.perListenerSettings) for (const l of this.config.listeners) per.set(l, await load(l.security));
    this.global = global;
    this.perListener = per;
    // one line per file even when several listeners share it
    const files = new Map([global, ...per.values()].flatMap((s) => (s.passwords ? [[s.passwords.path, s.passwords]] : [])));
    return [...files.values()].flatMap((p) => p.skipped.map(describeSkippedLine)).concat(this.dynsecSkipped.splice(0));
  }

  /** Clients disconnected because a dynamic security command changed what they may do. */
  readonly kicked = new WeakSet<Client>();
  /**
   * Dynamic security state by file: read once at start and kept over SIGHUP, as Mosquitto keeps
   * the plugin's (its commands change the file, the broker holds the truth).
   */
  private readonly dynsec = new Map<string, DynamicSecurity>();
  /** Log lines for entries of dynamic security files read since the last load(). */
  private dynsecSkipped: string[] = [];

  /** The dynamic security state of a file, read the first time it is named (an unreadable file stops the start). */
  private dynamicSecurity(path: string): DynamicSecurity {
    let d = this.dynsec.get(path);
    if (!d) {
      d = DynamicSecurity.load(path);
      this.dynsec.set(path, d);
      this.dynsecSkipped.push(...d.skipped.map((line) => `dynamic security file ${path}: ${line}`));
    }
    return d;
  }

  /**
   * A publish to `$CONTROL/dynamic-security/v1` on a listener with the dynamic security plugin:
   * runs its commands, disconnects the clients whose rights changed (without their wills, as
   * Mosquitto's kick does), then publishes the responses to `…/response`.
   */
  private control(aedes: Aedes, client: Client, meta: ClientMeta | undefined, payload: Buffer): void {
    const dynsec = this.securityFor(meta?.listener).dynsec;
    if (!dynsec) return;
    const who = `${client.id}/${meta?.username ?? ''}`;
    const result = dynsec.control(payload, (command) => this.log.info(`dynsec: ${who} | ${command}`));
    if (result.saveError) this.log.error(result.saveError);
    for (const c of Object.values((aedes as unknown as { clients: Record<string, Client> }).clients)) {
      const m = clientMeta(c);
      if (!m || m.internal) continue;
      if (m.username === undefined ? result.kickAnonymous : result.kickUsers.has(m.username)) {
        this.kicked.add(c);
        (c as { will?: unknown }).will = null;
        c.close();
      }
    }
    aedes.publish({ cmd: 'publish', topic: RESPONSE_TOPIC, payload: result.response, qos: 0, retain: false, dup: false }, () => undefined);
  }

  private securityFor(listener: ListenerConfig | undefined): LoadedSecurity {
    return (listener && this.perListener.get(listener)) ?? this.global;
  }

  /**
   * A check of every network CONNECT before its credentials (internal clients are never asked):
   * `connack` refuses it with reason `banned` (CONNACK 5), `close` closes the connection before any CONNACK.
   */
  guardConnects(guard: ConnectGuard): void {
    this.connectGuard = guard;
  }

  /** Aedes hook options. */
  hooks(
    aedes: () => Aedes,
  ): Pick<AedesOptions, 'preConnect' | 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'> {
    const cfg = this.config;
    return {
      preConnect: (client, packet, done) => {
        const info = connInfo(client);
        const meta: ClientMeta = {
          username: packet.username,
          listener: info?.listener,
          clientIdWasEmpty: packet.clientId === '',
          clean: packet.clean !== false,
          internal: info?.transport === 'internal',
        };
        (client as unknown as Record<symbol, ClientMeta>)[META] = meta;
        watchMqtt5(client, packet);
        // accept_protocol_versions (Mosquitto 2.1): a 3.1/3.1.1 version this listener does not take is made one
        // Aedes refuses itself, so the client gets CONNACK 1 as from Mosquitto (Aedes' authenticate cannot
        // answer 1); MQTT 5 is refused in authenticate, where the CONNACK can carry 0x84 in MQTT 5's format
        if (info?.listener.acceptProtocolVersions && !info.listener.acceptProtocolVersions.includes(packet.protocolVersion ?? 4)) {
          if (packet.protocolVersion === 5) meta.versionRefused = true;
          else packet.protocolVersion = 0 as typeof packet.protocolVersion;
        }
        done(null, true);
      },
      authenticate: (client, username, password, done) => {
        this.authenticate(client, username, password, aedes()).then(
          () => done(null, true),
          (err: AuthenticateError & { reason?: RefusalReason; closed?: boolean }) => {
            const code = err.closed ? undefined : err.returnCode;
            this.probe.emit('connection-refused', client, code, err.reason ?? 'not-authorized', clientMeta(client)?.username);
            done(err, false);
          },
        );
      },
      authorizePublish: (client, packet, done) => {
        if (!client) return done(null);
        const meta = clientMeta(client);
        if (packet.retain && !cfg.retainAvailable) return done(new Error('retained messages are not available (retain_available false)'));
        const mount = meta?.listener?.mountPoint;
        if (mount) packet.topic = mount + packet.topic;
        const tooBig = cfg.messageSizeLimit > 0 && packet.payload.length > cfg.messageSizeLimit;
        const acl = meta?.internal ? undefined : this.securityFor(meta?.listener).acl; // in-broker beats are trusted
        const denied =
          (!meta?.internal && reservedForClients(packet.topic)) ||
          packet.topic.startsWith('$mqprobe/') ||
          (acl !== undefined && !acl.check({ username: meta?.username, clientId: client.id }, packet.topic, 'write'));
        // max_qos: a 3.1.1 client is disconnected as by Mosquitto (MQTT 5: the engine's DISCONNECT 0x9B); wills pass
        if (packet.qos > cfg.maxQos && !isClosed(client)) return done(new Error(`QoS ${packet.qos} above max_qos ${cfg.maxQos}`));
        if (!tooBig && !denied && packet.topic.startsWith('$CONTROL/')) {
          if (packet.topic === CONTROL_TOPIC) this.control(aedes(), client, meta, Buffer.from(packet.payload));
          // never delivered, acknowledged as any publish (Mosquitto's control__process)
          packet.topic = CONTROL_DONE_TOPIC;
          packet.retain = false;
          packet.payload = Buffer.alloc(0);
        } else if (tooBig || denied) {
          this.probe.emit('publish-denied', client, {
            topic: packet.topic,
            qos: packet.qos,
            retain: packet.retain,
            dup: packet.dup,
            messageId: packet.messageId,
            payloadSize: packet.payload.length,
          });
          // MQTT 5: the engine answers PUBACK/PUBREC 0x87 (QoS 0: nothing) and drops it, as Mosquitto does
          if (versionOf(client) === 5) return done(survivable(new Error(tooBig ? 'message_size_limit exceeded' : 'not authorized')));
          // MQTT 3.1.1: Mosquitto acknowledges and drops; Aedes would disconnect on an error, so reroute instead.
          packet.topic = DENIED_TOPIC;
          packet.retain = false;
          packet.payload = Buffer.alloc(0);
        } else if (isClosed(client)) {
          // Aedes authorizes a will only once the connection is closing, and clears it before clientDisconnect
          this.probe.emit('will-published', client, {
            topic: packet.topic,
            qos: packet.qos,
            retain: packet.retain,
            payloadSize: packet.payload.length,
          });
        }
        done(null);
      },
      authorizeSubscribe: (client, sub, done) => {
        const meta = clientMeta(client);
        // a shared subscription ($share/<group>/<filter>): the mount point and the ACL apply to the filter
        const { prefix, filter } = splitShared(sub.topic);
        const mount = meta?.listener?.mountPoint;
        const topic = mount ? mount + filter : filter;
        sub.topic = prefix + topic;
        const acl = meta?.internal ? undefined : this.securityFor(meta?.listener).acl; // in-broker beats are trusted
        const allowed =
          !topic.startsWith('$mqprobe/') &&
          (acl === undefined || acl.check({ username: meta?.username, clientId: client.id }, topic, 'subscribe'));
        if (!allowed) {
          this.probe.emit('subscription-denied', client, sub);
          return done(null, null);
        }
        if (sub.qos > cfg.maxQos) sub.qos = cfg.maxQos as typeof sub.qos;
        done(null, sub);
      },
      authorizeForward: (client, packet) => {
        if (engineInternal(packet.topic)) return null;
        const meta = clientMeta(client);
        const acl = meta?.internal ? undefined : this.securityFor(meta?.listener).acl; // in-broker beats are trusted
        if (acl && !acl.check({ username: meta?.username, clientId: client.id }, packet.topic, 'read')) return null;
        const mount = meta?.listener?.mountPoint;
        if (mount) {
          if (!packet.topic.startsWith(mount)) return null;
          return { ...packet, topic: packet.topic.slice(mount.length) };
        }
        return packet;
      },
    };
  }

  /**
   * The dynamic security plugin's unsubscribe ACL (Mosquitto checks UNSUBSCRIBE against
   * unsubscribeLiteral/unsubscribePattern and the default access): a denied filter is taken out of
   * the packet before Aedes handles it, so that subscription stays, and the UNSUBACK goes out as
   * for any UNSUBSCRIBE (MQTT 3.1.1 has no per-filter result; Mosquitto sends a plain UNSUBACK too).
   */
  guardUnsubscribes(client: Client): void {
    (client as unknown as { _parser: NodeJS.EventEmitter })._parser.prependListener('packet', this.filterUnsubscribes);
  }

  /** One listener for every connection's parser. */
  private readonly filterUnsubscribes = forParserClient((client, packet: { cmd: string; unsubscriptions?: string[] }) => {
    if (packet.cmd !== 'unsubscribe' || !packet.unsubscriptions) return;
    const meta = clientMeta(client);
    const dynsec = meta && !meta.internal ? this.securityFor(meta.listener).dynsec : undefined;
    if (!dynsec) return;
    const mount = meta?.listener?.mountPoint ?? '';
    packet.unsubscriptions = packet.unsubscriptions.filter((f) => dynsec.allows(meta?.username, mount + f, 'unsubscribe', client.id));
  });

  /**
   * Checks a username and password as a CONNECT on that listener would be checked (password_file,
   * allow_anonymous; undefined username: anonymous). Resolves with the refusal, or undefined when
   * accepted. The HTTP listener uses it for its Basic logins: one timing-safe code path for both.
   */
  async identify(
    username: string | undefined,
    password: Buffer | undefined,
    listener?: ListenerConfig,
    clientId?: string,
  ): Promise<RefusalReason | undefined> {
    const sec = this.securityFor(listener);
    const anonymous = listener?.allowAnonymous ?? sec.allowAnonymous; // listener_allow_anonymous wins (Mosquitto 2.1)
    if (username === undefined) return anonymous ? undefined : 'anonymous-not-allowed';
    if (sec.dynsec) {
      const verdict = await sec.dynsec.authenticate(username, password, clientId);
      if (verdict === 'ok') return undefined;
      // deferred: an unknown username, or no password given or stored; Mosquitto then refuses
      return verdict === 'refused' ? 'bad-credentials' : 'unknown-user';
    }
    if (sec.passwords) {
      const verdict = await sec.passwords.verify(username, password);
      if (verdict === 'unknown-user') return 'unknown-user';
      if (verdict === 'bad-password') return 'bad-credentials';
      return undefined;
    }
    return anonymous ? undefined : 'not-authorized';
  }

  /**
   * Whether a user (undefined: anonymous) without a client id may subscribe to a filter, read or write
   * a topic under the ACL of that listener, as `authorizeSubscribe`/`authorizeForward`/`authorizePublish` decide for MQTT
   * clients. For the HTTP listener's clients: they have no client id, so `%c` patterns never grant
   * them anything (the stand-in id contains `/`, which the ACL never expands into a grant).
   */
  allows(username: string | undefined, topic: string, access: 'read' | 'subscribe' | 'write', listener?: ListenerConfig): boolean {
    if (topic.startsWith('$mqprobe/')) return false;
    const acl = this.securityFor(listener).acl;
    return acl === undefined || acl.check({ username, clientId: NO_CLIENT_ID }, topic, access);
  }

  private async authenticate(client: Client, username: string | undefined, password: Buffer | undefined, aedes: Aedes): Promise<void> {
    const meta = clientMeta(client)!;
    const info = connInfo(client);
    const listener = meta.listener;
    const fail = (reason: RefusalReason) => {
      throw Object.assign(refusal(reason), { reason });
    };
    if (meta.versionRefused) fail('protocol-version');
    if (client.id.startsWith('$') && !meta.internal) fail('bad-client-id');
    if (hasControlCharacter(client.id)) {
      this.probe.emit('protocol-error', info, client, new Error('client id contains a control character'));
      fail('bad-client-id');
    }
    if (meta.clientIdWasEmpty) {
      // MQTT-3.1.3-8: an empty client id needs clean session; Mosquitto also lets operators forbid it
      if (!meta.clean || !this.config.allowZeroLengthClientid) fail('bad-client-id');
      (client as { id: string }).id = (listener?.autoIdPrefix ?? this.config.autoIdPrefix) + randomUUID();
    }
    const guarded = meta.internal ? undefined : this.connectGuard?.({ ip: info?.remoteAddress, clientId: client.id, username });
    if (guarded === 'close') {
      client.conn.destroy(); // no CONNACK: the refusal must not claim one (its code is left out)
      throw Object.assign(refusal('banned'), { reason: 'banned' as const, closed: true });
    }
    if (guarded) fail('banned');
    if (listener && listener.maxConnections >= 0 && (this.connected.get(listener)?.n ?? 0) >= listener.maxConnections) fail('server-limit');
    // Mosquitto 2.1: global_max_clients across the broker (accept_protocol_versions: preConnect)
    if (this.config.globalMaxClients && aedes.connectedClients >= this.config.globalMaxClients) fail('server-limit');

    if (meta.internal) {
      meta.username = client.id;
    } else if (listener?.tls.useIdentityAsUsername || listener?.tls.useSubjectAsUsername) {
      const t = info?.tls;
      const identity = listener.tls.useIdentityAsUsername ? t?.commonName : t?.subject;
      if (!t?.authorized || !identity) fail('not-authorized');
      meta.username = identity;
    } else {
      const refused = await this.identify(username, password, listener, client.id);
      if (refused) fail(refused);
      meta.username = username;
    }
    if (listener?.useUsernameAsClientid) {
      if (!meta.username) fail('not-authorized');
      (client as { id: string }).id = meta.username!;
    }
    const previous = (aedes as unknown as { clients: Record<string, Client> }).clients[client.id];
    if (previous && previous !== client) this.takenOver.add(previous);
    if (listener) {
      let count = this.connected.get(listener);
      if (!count) this.connected.set(listener, (count = { n: 0 }));
      count.n++;
      // a property and a shared listener, not a closure per connection (memory per idle client)
      (client.conn as unknown as Counted)[COUNTED] = count;
      client.conn.on('close', uncount);
    }
  }
}
