import { hostname } from 'node:os';
import type { ConfigLine } from '../config/lexer.js';
import { ConfigError, type SourcePos } from '../config/errors.js';
import { ValueReader, specIndex, type KeySpec } from '../config/spec.js';
import { parseTopicLine, TopicLineError, type BridgeTopic } from './topics.js';

/** One `connection <name>` block of mosquitto.conf, with Mosquitto 2.0's defaults. */
export interface BridgeConfig {
  name: string;
  pos: SourcePos;
  addresses: { host: string; port: number }[];
  roundRobin: boolean;
  topics: BridgeTopic[];
  protocolVersion: 3 | 4 | 5;
  cleansession: boolean;
  /** undefined = same as cleansession. */
  localCleansession?: boolean;
  remoteClientid?: string;
  localClientid?: string;
  remoteUsername?: string;
  /** Never logged, captured or exported. */
  remotePassword?: string;
  localUsername?: string;
  localPassword?: string;
  keepalive: number;
  /** Seconds: constant when cap is undefined, else decorrelated jitter from base up to cap. */
  restart: { base: number; cap?: number };
  startType: 'automatic' | 'lazy' | 'once';
  /** On SIGHUP: `lazy` takes changed settings at the next reconnection, `immediate` reconnects at once (Mosquitto 2.1). */
  reloadType: 'lazy' | 'immediate';
  idleTimeout: number;
  threshold: number;
  notifications: boolean;
  notificationsLocalOnly: boolean;
  notificationTopic?: string;
  tryPrivate: boolean;
  attemptUnsubscribe: boolean;
  outgoingRetain: boolean;
  /** 0 = no limit. */
  maxPacketSize: number;
  bindAddress?: string;
  tls: {
    cafile?: string;
    capath?: string;
    certfile?: string;
    keyfile?: string;
    insecure: boolean;
    version?: 'tlsv1.1' | 'tlsv1.2' | 'tlsv1.3';
    alpn?: string;
    ciphers?: string;
    useOsCerts: boolean;
  };
  /** Mosquitto 2.1 MQTT 5 keys (sent in CONNECT properties when the remote speaks 5.0). */
  receiveMaximum?: number;
  sessionExpiryInterval?: number;
  maxTopicAlias?: number;
  /** bridge_tcp_keepalive: seconds of silence before the kernel's first TCP keepalive probe (SO_KEEPALIVE on). */
  tcpKeepaliveIdle?: number;
}

/** Mosquitto's defaults for a new block. */
export function newBridge(name: string, pos: SourcePos): BridgeConfig {
  return {
    name,
    pos,
    addresses: [],
    roundRobin: false,
    topics: [],
    protocolVersion: 4,
    cleansession: false,
    keepalive: 60,
    restart: { base: 5, cap: 30 },
    startType: 'automatic',
    reloadType: 'lazy',
    idleTimeout: 60,
    threshold: 10,
    notifications: true,
    notificationsLocalOnly: false,
    tryPrivate: true,
    attemptUnsubscribe: true,
    outgoingRetain: true,
    maxPacketSize: 0,
    tls: { insecure: false, useOsCerts: false },
  };
}

/** The ids and topic a bridge uses when the config leaves them out (Mosquitto 2.0's defaults). */
export function remoteClientId(b: BridgeConfig): string {
  return b.remoteClientid ?? `${hostname()}.${b.name}`;
}
export function localClientId(b: BridgeConfig): string {
  return b.localClientid ?? `local.${remoteClientId(b)}`;
}
export function notificationTopic(b: BridgeConfig): string {
  return b.notificationTopic ?? `$SYS/broker/connection/${remoteClientId(b)}/state`;
}

type Spec = KeySpec<BridgeConfig>;
function k(key: string, usage: string, doc: string, dflt: string | undefined, set: (b: BridgeConfig, v: ValueReader) => void): Spec {
  return { key, usage, doc, default: dflt, scope: 'global', set };
}
const one = (set: (b: BridgeConfig, v: ValueReader) => void) => (b: BridgeConfig, v: ValueReader) => set(b, v.count(1));
/** A key that cannot be done: the start stops with a clear error naming it. */
const refused = (why: string) => (_b: BridgeConfig, v: ValueReader) => v.fail(why);

function addresses(b: BridgeConfig, v: ValueReader): void {
  v.count(1, 64);
  b.addresses = v.line.args.map((word) => {
    const m = /^(\[[^\]]+\]|[^:]+|[0-9a-fA-F:]+)(?::(\d+))?$/.exec(word);
    const host = m?.[1].replace(/^\[|\]$/g, '');
    const port = m?.[2] === undefined ? 1883 : Number(m[2]);
    if (!host || port < 1 || port > 65535) v.fail(`expected host[:port], got "${word}"`);
    return { host, port };
  });
}

/** Every bridge key of mosquitto.conf(5) "Bridges" (2.0, and 2.1's additions); each belongs after `connection <name>`. */
export const bridgeKeys: Spec[] = [
  k(
    'address',
    '<host>[:<port>] [<host>[:<port>] …]',
    'The remote broker(s); several are tried in turn (see round_robin). Port 1883 unless given.',
    undefined,
    addresses,
  ),
  k('addresses', '<host>[:<port>] [<host>[:<port>] …]', 'Same as address.', undefined, addresses),
  k(
    'round_robin',
    'true | false',
    'false: the first address is the main one, the others are fallbacks and the bridge returns to the main one when it can. true: the addresses are equals, tried in turn.',
    'false',
    one((b, v) => (b.roundRobin = v.bool())),
  ),
  k(
    'topic',
    '<pattern> [in|out|both [<qos> [<local prefix> <remote prefix>]]]',
    'A topic to bridge (repeatable), with Mosquitto\'s prefix mapping; `""` for an empty pattern or prefix. Prefixes must not hold wildcards. Default direction out, QoS 0.',
    undefined,
    (b, v) => {
      try {
        b.topics.push(parseTopicLine(v.line.args));
      } catch (err) {
        if (err instanceof TopicLineError) v.fail(err.message);
        throw err;
      }
    },
  ),
  k(
    'bridge_protocol_version',
    'mqttv31 | mqttv311 | mqttv50',
    'The MQTT version spoken to the remote (mqtt.js speaks all three, whatever the local engine speaks).',
    'mqttv311',
    one((b, v) => (b.protocolVersion = ({ mqttv31: 3, mqttv311: 4, mqttv50: 5 } as const)[v.oneOf(['mqttv31', 'mqttv311', 'mqttv50'])])),
  ),
  k(
    'cleansession',
    'true | false',
    'Clean session (MQTT 5: session expiry 0) towards the remote. false keeps the remote subscriptions and queued messages across reconnects.',
    'false',
    one((b, v) => (b.cleansession = v.bool())),
  ),
  k(
    'local_cleansession',
    'true | false',
    "Clean session of the bridge's local client: false keeps its local subscriptions, so out messages of QoS 1/2 wait in the local broker while the remote is down.",
    'as cleansession',
    one((b, v) => (b.localCleansession = v.bool())),
  ),
  k(
    'remote_clientid',
    '<id>',
    'Client id towards the remote.',
    '<hostname>.<connection name>',
    one((b, v) => (b.remoteClientid = v.word())),
  ),
  k(
    'clientid',
    '<id>',
    'Old name of remote_clientid.',
    undefined,
    one((b, v) => (b.remoteClientid = v.word())),
  ),
  k(
    'local_clientid',
    '<id>',
    "Client id of the bridge's client on the local broker.",
    'local.<remote_clientid>',
    one((b, v) => (b.localClientid = v.word())),
  ),
  k(
    'remote_username',
    '<name>',
    'User name towards the remote.',
    undefined,
    one((b, v) => (b.remoteUsername = v.word())),
  ),
  k(
    'username',
    '<name>',
    'Old name of remote_username.',
    undefined,
    one((b, v) => (b.remoteUsername = v.word())),
  ),
  k(
    'remote_password',
    '<password>',
    'Password towards the remote (needs remote_username); never logged, captured or exported.',
    undefined,
    (b, v) => (b.remotePassword = v.rest()),
  ),
  k('password', '<password>', 'Old name of remote_password.', undefined, (b, v) => (b.remotePassword = v.rest())),
  k(
    'local_username',
    '<name>',
    "User name of the bridge's local client (seen in capture and $SYS). The local client is trusted like the beats: acl_file is not applied to it (with acl_file set, this key stops the start).",
    undefined,
    one((b, v) => (b.localUsername = v.word())),
  ),
  k(
    'local_password',
    '<password>',
    "Password of the bridge's local client (not checked: the local client is an in-process, trusted client).",
    undefined,
    (b, v) => (b.localPassword = v.rest()),
  ),
  k(
    'keepalive_interval',
    '<seconds>',
    'Keepalive towards the remote; 0 = none (not allowed by Mosquitto 2.0 below 5).',
    '60',
    one((b, v) => (b.keepalive = v.int(0, 0, 65535))),
  ),
  k(
    'restart_timeout',
    '<seconds> | <base> <cap>',
    'Wait before reconnecting: one value = constant; two = "decorrelated jitter" backoff from base up to cap.',
    '5 30',
    (b, v) => {
      v.count(1, 2);
      const base = v.int(0, 1, 86_400);
      const cap = v.line.args.length === 2 ? v.int(1, 1, 86_400) : undefined;
      if (cap !== undefined && cap < base) v.fail(`the cap (${cap}) must not be below the base (${base})`);
      b.restart = { base, cap };
    },
  ),
  k(
    'start_type',
    'automatic | lazy | once',
    'automatic: connect at start and reconnect after restart_timeout. lazy: connect once threshold messages wait for the remote, leave after idle_timeout. once: connect at start, never reconnect.',
    'automatic',
    one((b, v) => (b.startType = v.oneOf(['automatic', 'lazy', 'once']))),
  ),
  k(
    'idle_timeout',
    '<seconds>',
    'A lazy bridge disconnects after this long without a message.',
    '60',
    one((b, v) => (b.idleTimeout = v.int(0, 1, 86_400 * 365))),
  ),
  k(
    'threshold',
    '<count>',
    'Messages waiting for the remote that make a lazy bridge connect.',
    '10',
    one((b, v) => (b.threshold = v.int(0, 1, 10_000_000))),
  ),
  k(
    'notifications',
    'true | false',
    'Publish the bridge state (retained "1"/"0") on notification_topic, with a will on the remote so it sees the bridge go down.',
    'true',
    one((b, v) => (b.notifications = v.bool())),
  ),
  k(
    'notifications_local_only',
    'true | false',
    'Publish the notifications on the local broker only.',
    'false',
    one((b, v) => (b.notificationsLocalOnly = v.bool())),
  ),
  k(
    'notification_topic',
    '<topic>',
    'Topic of the notifications.',
    '$SYS/broker/connection/<remote_clientid>/state',
    one((b, v) => (b.notificationTopic = v.word())),
  ),
  k(
    'try_private',
    'true | false',
    'Tell the remote this is a bridge (MQTT 3.x: protocol version | 0x80; 5.0: no-local and retain-as-published subscriptions) so two brokers bridged both ways do not echo.',
    'true',
    one((b, v) => (b.tryPrivate = v.bool())),
  ),
  k(
    'bridge_attempt_unsubscribe',
    'true | false',
    'On connect, unsubscribe on the remote from the out-only topics (a topic whose direction changed from in).',
    'true',
    one((b, v) => (b.attemptUnsubscribe = v.bool())),
  ),
  k(
    'bridge_outgoing_retain',
    'true | false',
    'false clears the retain flag of messages sent to the remote (for remotes that refuse retained messages).',
    'true',
    one((b, v) => (b.outgoingRetain = v.bool())),
  ),
  k(
    'bridge_max_packet_size',
    '<bytes>',
    'Largest packet sent to the remote; a larger message is dropped and counted. 0 = no limit. With a 5.0 remote the smaller of this and its maximum packet size applies.',
    '0',
    one((b, v) => (b.maxPacketSize = v.int(0, 0, 268_435_455))),
  ),
  k(
    'bridge_bind_address',
    '<address>',
    'Local address the connection to the remote leaves from.',
    undefined,
    one((b, v) => (b.bindAddress = v.word())),
  ),
  k(
    'bridge_cafile',
    '<path>',
    'CA certificates for the remote (turns TLS on).',
    undefined,
    one((b, v) => (b.tls.cafile = v.path())),
  ),
  k(
    'bridge_capath',
    '<dir>',
    'A directory of CA certificates (*.pem, *.crt; turns TLS on).',
    undefined,
    one((b, v) => (b.tls.capath = v.path())),
  ),
  k(
    'bridge_certfile',
    '<path>',
    'Client certificate (PEM) for the remote.',
    undefined,
    one((b, v) => (b.tls.certfile = v.path())),
  ),
  k(
    'bridge_keyfile',
    '<path>',
    'Key of bridge_certfile (PEM, unencrypted).',
    undefined,
    one((b, v) => (b.tls.keyfile = v.path())),
  ),
  k(
    'bridge_insecure',
    'true | false',
    'Do not check that the remote certificate names the host (the chain is still checked). For tests only.',
    'false',
    one((b, v) => (b.tls.insecure = v.bool())),
  ),
  k(
    'bridge_tls_version',
    'tlsv1.1 | tlsv1.2 | tlsv1.3',
    'The lowest TLS version offered.',
    'tlsv1.2',
    one((b, v) => (b.tls.version = v.oneOf(['tlsv1.1', 'tlsv1.2', 'tlsv1.3']))),
  ),
  k(
    'bridge_alpn',
    '<protocol>',
    'ALPN protocol offered (AWS IoT on port 443: x-amzn-mqtt-ca).',
    undefined,
    one((b, v) => (b.tls.alpn = v.word())),
  ),
  k(
    'bridge_identity',
    '<identity>',
    'TLS-PSK identity: not supported (stops the start).',
    undefined,
    refused('TLS-PSK bridges are not supported by mqprobe; use certificates (bridge_cafile, bridge_certfile, bridge_keyfile)'),
  ),
  k(
    'bridge_psk',
    '<hex key>',
    'TLS-PSK key: not supported (stops the start).',
    undefined,
    refused('TLS-PSK bridges are not supported by mqprobe; use certificates (bridge_cafile, bridge_certfile, bridge_keyfile)'),
  ),
  k(
    'bridge_require_ocsp',
    'true | false',
    'OCSP stapling: not supported (true stops the start).',
    'false',
    one((_b, v) => v.bool() && v.fail("OCSP stapling is not supported by mqprobe's bridge")),
  ),
  // Mosquitto 2.1's bridge keys
  k(
    'bridge_receive_maximum',
    '<count>',
    'MQTT 5 remotes: receive maximum sent in CONNECT (Mosquitto 2.1).',
    undefined,
    one((b, v) => (b.receiveMaximum = v.int(0, 1, 65535))),
  ),
  k(
    'bridge_session_expiry_interval',
    '<seconds>',
    'MQTT 5 remotes with cleansession false: session expiry sent in CONNECT (Mosquitto 2.1).',
    undefined,
    one((b, v) => (b.sessionExpiryInterval = v.int(0, 0, 4_294_967_295))),
  ),
  k(
    'bridge_max_topic_alias',
    '<count>',
    'MQTT 5 remotes: topic aliases the remote may use towards the bridge (Mosquitto 2.1).',
    undefined,
    one((b, v) => (b.maxTopicAlias = v.int(0, 0, 65535))),
  ),
  k(
    'bridge_tls_use_os_certs',
    'true | false',
    'Trust the system CA store for the remote (turns TLS on; Mosquitto 2.1).',
    'false',
    one((b, v) => (b.tls.useOsCerts = v.bool())),
  ),
  k(
    'bridge_ciphers',
    '<cipher list>',
    'OpenSSL cipher list for TLS 1.2 and below (Mosquitto 2.1).',
    undefined,
    one((b, v) => (b.tls.ciphers = v.word())),
  ),
  k(
    'bridge_tcp_keepalive',
    '<idle>',
    "TCP keepalive on the socket to the remote: the first probe after <idle> seconds of silence (1-32767). Mosquitto 2.1 also takes <interval> <count>; Node.js cannot set those, so that form stops the start: give <idle> alone and the kernel's interval and count apply (docs/bridges.md).",
    undefined,
    (b, v) => {
      v.count(1, 3);
      if (v.line.args.length > 1)
        v.fail(
          "Node.js cannot set the TCP keepalive interval and count (TCP_KEEPINTVL, TCP_KEEPCNT) on a socket; write `bridge_tcp_keepalive <idle>` and the kernel's interval and count apply (net.ipv4.tcp_keepalive_intvl, tcp_keepalive_probes)",
        );
      b.tcpKeepaliveIdle = v.int(0, 1, 32767);
    },
  ),
  k(
    'bridge_tcp_user_timeout',
    '<ms>',
    'Not supported: Node.js cannot set TCP_USER_TIMEOUT (stops the start).',
    undefined,
    refused('Node.js cannot set TCP_USER_TIMEOUT on a socket; not supported'),
  ),
  k(
    'bridge_reload_type',
    'lazy | immediate',
    'What SIGHUP, which re-reads the `connection` blocks, does to this bridge: `lazy` (default) keeps the connection and takes changed settings at the next reconnection; `immediate` disconnects and reconnects with the re-read settings at once (changed or not, as Mosquitto 2.1). A block removed from the file stops its bridge; a new one starts (docs/bridges.md, Reloading).',
    'lazy',
    one((b, v) => (b.reloadType = v.oneOf(['lazy', 'immediate']))),
  ),
];

const bridgeSpecs = specIndex(bridgeKeys);

/** Whether a config key belongs in a `connection` block. */
export function isBridgeKey(key: string): boolean {
  return bridgeSpecs.has(key);
}

/**
 * Reads one line of a `connection` block into the block (`connection <name>` opens a new one). Throws a
 * ConfigError naming file, line and key; a bridge key outside a block is an error as in Mosquitto.
 */
export function readBridgeLine(bridges: BridgeConfig[], line: ConfigLine): void {
  const v = new ValueReader(line);
  if (line.key === 'connection') {
    v.count(1);
    const name = v.word();
    if (!/^[A-Za-z0-9_.-]{1,128}$/.test(name)) v.fail(`expected a connection name of letters, digits, _ . -, got "${name}"`);
    if (bridges.some((b) => b.name === name)) v.fail(`connection ${name} is configured twice`);
    bridges.push(newBridge(name, line));
    return;
  }
  const current = bridges.at(-1);
  if (!current) return v.fail('bridge keys belong after `connection <name>`');
  bridgeSpecs.get(line.key)!.set(current, v);
}

/** Checks across a block's keys once the file is read. */
export function validateBridges(bridges: BridgeConfig[], aclFileSet: boolean): void {
  const ids = new Map<string, string>();
  for (const b of bridges) {
    const fail = (key: string, detail: string): never => {
      throw new ConfigError(b.pos, key, `connection ${b.name}: ${detail}`);
    };
    if (b.addresses.length === 0) fail('address', 'needs an address');
    if (b.topics.length === 0) fail('topic', 'needs at least one topic line');
    if (b.remotePassword !== undefined && b.remoteUsername === undefined) fail('remote_password', 'needs remote_username');
    if ((b.tls.certfile === undefined) !== (b.tls.keyfile === undefined))
      fail('bridge_certfile', 'bridge_certfile and bridge_keyfile must be given together');
    if ((b.tls.certfile || b.tls.insecure || b.tls.alpn || b.tls.version || b.tls.ciphers) && !tlsOn(b))
      fail('bridge_cafile', 'TLS keys need bridge_cafile, bridge_capath or bridge_tls_use_os_certs (which turn TLS on)');
    if (b.keepalive > 0 && b.keepalive < 5) fail('keepalive_interval', 'must be 0 or at least 5 seconds');
    if (b.localUsername !== undefined && aclFileSet)
      fail(
        'local_username',
        "the bridge's local client is trusted (no ACL check); with acl_file set, remove local_username or the ACL would silently not apply to it",
      );
    const id = remoteClientId(b);
    const other = ids.get(id);
    if (other) fail('remote_clientid', `the remote client id "${id}" is also used by connection ${other}`);
    ids.set(id, b.name);
  }
}

/** Whether the bridge speaks TLS to the remote (Mosquitto: when a CA is configured). */
export function tlsOn(b: BridgeConfig): boolean {
  return !!(b.tls.cafile || b.tls.capath || b.tls.useOsCerts);
}
