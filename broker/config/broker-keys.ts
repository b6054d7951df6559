import type { KeySpec } from './spec.js';
import type { BrokerTarget, ListenerConfig, LogDest, SecurityConfig } from './types.js';
import { sseKeys } from '../http/sse-config.js';
import { pluginKeys } from '../auth/plugins.js';
import { httpAuthKeys } from '../http-auth.js';
import { mosquittoLogKeys, mqprobeLogKeys } from '../log/settings.js';
import { userKey } from '../privileges.js';
import { proxyProtocolKey } from '../proxy-protocol.js';
import { mosquitto21Keys } from './mosquitto21-keys.js';

export type { BrokerTarget } from './types.js';

const LOG_TYPES = ['debug', 'error', 'warning', 'notice', 'information', 'subscribe', 'unsubscribe', 'websockets', 'none', 'all'] as const;

/** persistent_client_expiration's syntax (Mosquitto): a number and h, d, w, m (months of 30 days) or y (365 days). */
const EXPIRATION_UNITS: Record<string, number> = { h: 3600, d: 86_400, w: 7 * 86_400, m: 30 * 86_400, y: 365 * 86_400 };
function durationSeconds(s: string, fail: (m: string) => never): number {
  const m = /^(\d+)([hdwmy])$/.exec(s);
  const seconds = m ? Number(m[1]) * EXPIRATION_UNITS[m[2]] : 0;
  // the MQTT 5 session expiry interval is 32 bits; 0xFFFFFFFF means never
  if (!m || seconds === 0 || seconds >= 0xffffffff) fail(`expected a duration such as 1h, 2d, 4w, 6m, 1y (up to 136y), got "${s}"`);
  return seconds;
}

function g(
  key: string,
  usage: string,
  doc: string,
  dflt: string | undefined,
  set: KeySpec<BrokerTarget>['set'],
  repeatable = false,
): KeySpec<BrokerTarget> {
  return { key, usage, doc, default: dflt, scope: 'global', set, repeatable };
}
function l(
  key: string,
  usage: string,
  doc: string,
  dflt: string | undefined,
  set: (lst: ListenerConfig, v: Parameters<KeySpec<BrokerTarget>['set']>[1]) => void,
): KeySpec<BrokerTarget> {
  return { key, usage, doc, default: dflt, scope: 'listener', set: (t, v) => set(t.listener(), v) };
}
function s(
  key: string,
  usage: string,
  doc: string,
  dflt: string | undefined,
  set: (sec: SecurityConfig, v: Parameters<KeySpec<BrokerTarget>['set']>[1]) => void,
): KeySpec<BrokerTarget> {
  return { key, usage, doc, default: dflt, scope: 'security', set: (t, v) => set(t.security(), v) };
}

/** Mosquitto 2.0 keys that mqprobe implements, with Mosquitto's meaning. */
export const mosquittoKeys: KeySpec<BrokerTarget>[] = [
  g(
    'per_listener_settings',
    'true | false',
    'When true, allow_anonymous, password_file and acl_file apply to the listener they follow instead of to the whole broker.',
    'false',
    (t, v) => {
      v.count(1);
      t.config.perListenerSettings = v.bool();
    },
  ),
  s(
    'allow_anonymous',
    'true | false',
    'Whether clients without a user name may connect. Mosquitto 2.0 semantics: false unless set, except in the local-only default (no listener configured).',
    'false',
    (sec, v) => {
      v.count(1);
      sec.allowAnonymous = v.bool();
    },
  ),
  s(
    'password_file',
    '<path>',
    'A password file as written by `mosquitto_passwd` 2.0 or 2.1 (or `mqprobe passwd`): `$argon2id$`, `$7$` PBKDF2-SHA512 (12- or 64-byte salt) and `$6$` SHA-512 lines. A line that cannot be used removes that user, with one log line (docs/security.md). Re-read on SIGHUP.',
    undefined,
    (sec, v) => {
      v.count(1);
      sec.passwordFile = v.path();
    },
  ),
  s('acl_file', '<path>', 'A Mosquitto ACL file (`topic`, `user`, `pattern` with %c/%u). Re-read on SIGHUP.', undefined, (sec, v) => {
    v.count(1);
    sec.aclFile = v.path();
  }),
  ...pluginKeys,
  s(
    'psk_file',
    '<path>',
    'Not supported: TLS-PSK is not implemented, so a psk_file line stops the start (its clients could not connect).',
    undefined,
    (_sec, v) => {
      v.fail(
        'TLS-PSK is not supported by mqprobe: clients that authenticate with a pre-shared key could not connect (use certificates or passwords)',
      );
    },
  ),
  g(
    'allow_zero_length_clientid',
    'true | false',
    'Whether MQTT 3.1.1 clients may connect with an empty client id (then one is assigned). Never with clean session false.',
    'true',
    (t, v) => {
      v.count(1);
      t.config.allowZeroLengthClientid = v.bool();
    },
  ),
  g('auto_id_prefix', '<prefix>', 'Prefix of client ids assigned to clients that sent an empty one.', 'auto-', (t, v) => {
    v.count(1);
    t.config.autoIdPrefix = v.word();
  }),
  g(
    'max_packet_size',
    '<bytes>',
    'Largest MQTT packet accepted; a larger one closes the connection. 0 = no limit (MQTT maximum, 268435455). The default follows Mosquitto 2.1 (2.0 had no limit).',
    '2000000',
    (t, v) => {
      v.count(1);
      t.config.maxPacketSize = v.int(0, 0, 268435455);
    },
  ),
  g('message_size_limit', '<bytes>', 'Largest publish payload accepted; larger publishes are dropped. 0 = no limit.', '0', (t, v) => {
    v.count(1);
    t.config.messageSizeLimit = v.int(0, 0, 268435455);
  }),
  g(
    'max_keepalive',
    '<seconds>',
    'Largest keepalive a client may ask for; a client asking for more (or for 0) is refused, as Aedes does.',
    '65535',
    (t, v) => {
      v.count(1);
      t.config.maxKeepalive = v.int(0, 10, 65535);
    },
  ),
  g(
    'max_queued_messages',
    '<count>',
    'QoS 1/2 messages held per client beyond those in flight; when a connected client has max_inflight_messages (or the Receive Maximum of an MQTT 5 client, when lower) + max_queued_messages PUBLISHes unacknowledged, further QoS 1/2 messages to it are dropped and counted (publish/messages/dropped). A persistent session keeps them and gets them on its next connect. 0 = no limit. (Mosquitto also bounds QoS 0 with it; mqprobe bounds QoS 0 by max_queued_bytes: docs/security.md.)',
    '1000',
    (t, v) => {
      v.count(1);
      t.config.maxQueuedMessages = v.int(0, 0, 1_000_000);
    },
  ),
  g(
    'max_inflight_messages',
    '<count>',
    "QoS 1/2 messages in flight per client (counts toward the max_queued_messages limit above; Aedes sends without a separate in-flight window). Also what each bridge (`connection`) has in flight to its remote, as in Mosquitto; an MQTT 5 remote's Receive Maximum takes its place there.",
    '20',
    (t, v) => {
      v.count(1);
      t.config.maxInflightMessages = v.int(0, 0, 65535);
    },
  ),
  g(
    'max_queued_bytes',
    '<bytes>',
    'Unsent bytes a connection may hold before QoS 0 messages to it are dropped and counted (publish/messages/dropped), beside global_max_queued_bytes. A subscriber that stops reading never holds up the others. 0 = 8 MiB (64 MiB before).',
    '0',
    (t, v) => {
      v.count(1);
      t.config.maxQueuedBytes = v.int(0, 0, 4 * 1024 * 1024 * 1024);
    },
  ),
  g(
    'set_tcp_nodelay',
    'true | false',
    "TCP_NODELAY on client sockets of mqtt listeners (Nagle's algorithm off), and what the broker writes to a connection in one pass of the event loop leaves in one write (broker/engine/write-batching.ts), as Mosquitto writes what it has for a client in one go. On by default, unlike Mosquitto (false): with Nagle on, the PUBACK of a QoS 1 PUBLISH and its delivery to a subscribed publisher leave in separate writes and the second waits for the peer's delayed ACK (a QoS 1 round trip to oneself: 43 ms, Mosquitto 0.2 ms, with this 1 ms); QoS 0 fan-in went from about 54,000 (Nagle) to 108,000 msg/s (this; TCP_NODELAY without the batching: 29,000) (bench/latency/qos1-roundtrip.ts; scenario A of npm run bench, the two settings alternated). false: Nagle on and one write per packet, as before. WebSocket connections always have TCP_NODELAY (the ws library sets it).",
    'true',
    (t, v) => {
      v.count(1);
      t.config.setTcpNodelay = v.bool();
    },
  ),
  g(
    'retain_available',
    'true | false',
    'When false, retained publishes are refused as Mosquitto does (the client is disconnected).',
    'true',
    (t, v) => {
      v.count(1);
      t.config.retainAvailable = v.bool();
    },
  ),
  g(
    'max_topic_alias',
    '<count>',
    'Topic aliases an MQTT 5 client may use towards the broker (advertised in its CONNACK); an alias of 0 or above it ends the connection with DISCONNECT 0x94. 0 = none.',
    '10',
    (t, v) => {
      v.count(1);
      t.config.maxTopicAlias = v.int(0, 0, 65535);
    },
  ),
  g(
    'max_qos',
    '0 | 1 | 2',
    'Highest QoS clients may use. MQTT 5 clients are told in their CONNACK, and a PUBLISH above it ends the connection with DISCONNECT 0x9B; subscriptions of every client are granted at most this QoS.',
    '2',
    (t, v) => {
      v.count(1);
      t.config.maxQos = v.int(0, 0, 2) as 0 | 1 | 2;
    },
  ),
  g(
    'persistent_client_expiration',
    '<duration: 1h, 2d, 4w, 6m, 1y>',
    'Persistent sessions (3.1.1 clean session false, MQTT 5 session expiry "never" or longer) end after this long without their client. MQTT 5 clients asking for longer are told the shorter interval in their CONNACK (Mosquitto keeps a finite interval as asked). The expiry counts across restarts (snapshot and Redis state).',
    undefined,
    (t, v) => {
      v.count(1);
      t.config.persistentClientExpiration = durationSeconds(v.word(), (m) => v.fail(m));
    },
  ),
  g('sys_interval', '<seconds>', 'How often $SYS topics are published. 0 = never.', '10', (t, v) => {
    v.count(1);
    t.config.sysInterval = v.int(0, 0, 86400);
  }),
  g(
    'log_dest',
    'stdout | stderr | file <path> | syslog | topic | none',
    'Where the log goes; repeat for several. `syslog` sends to the local syslog socket (facility from log_facility); `topic` publishes each line on `$SYS/broker/log/<E|W|N|I|M/subscribe|M/unsubscribe|WS>`; `dlt` is taken as syslog (docs/logging.md).',
    'stderr',
    (t, v) => {
      const kind = v.oneOf(['stdout', 'stderr', 'file', 'syslog', 'topic', 'none', 'dlt'] as const);
      let dest: LogDest;
      if (kind === 'file') {
        v.count(2);
        dest = { kind, path: v.path(1) };
      } else {
        v.count(1);
        dest = kind === 'dlt' ? { kind: 'syslog' } : { kind };
      }
      if (!t.config.logDest.some((d) => d.kind === dest.kind)) t.config.logDest.push(dest);
    },
    true,
  ),
  g(
    'log_type',
    LOG_TYPES.join(' | '),
    "Which messages are logged; repeat for several. Mosquitto's types: each line has one (connects and disconnects are notice, subscriptions subscribe, …); `all` and `-v` log every type (docs/logging.md).",
    'error warning notice information',
    (t, v) => {
      v.count(1);
      t.config.logType.add(v.oneOf(LOG_TYPES));
    },
    true,
  ),
  ...mosquittoLogKeys,
  g('connection_messages', 'true | false', 'Log one line per client connect and disconnect, as Mosquitto.', 'true', (t, v) => {
    v.count(1);
    t.config.connectionMessages = v.bool();
  }),
  g('pid_file', '<path>', 'Write the process id to this file at start (removed at exit).', undefined, (t, v) => {
    v.count(1);
    t.config.pidFile = v.path();
  }),
  userKey,
  g(
    'persistence',
    'true | false',
    'Keep retained messages, persistent sessions and queued messages across restarts in a snapshot file.',
    'false',
    (t, v) => {
      v.count(1);
      t.config.persistence = v.bool();
    },
  ),
  g('persistence_location', '<directory>', 'Directory of the snapshot file.', 'the working directory', (t, v) => {
    v.count(1);
    t.config.persistenceLocation = v.path();
  }),
  g(
    'persistence_file',
    '<name>',
    "File name inside persistence_location. A Mosquitto db there (e.g. `mosquitto.db`) is imported once and never written; mqprobe's snapshot is then `<name>.mqprobe.json` beside it (docs/persistence.md).",
    'mqprobe.db',
    (t, v) => {
      v.count(1);
      t.config.persistenceFile = v.word();
    },
  ),
  g(
    'autosave_interval',
    '<seconds>',
    'Seconds between snapshot saves (0 = only at shutdown). A `kill -9` loses at most this long.',
    '1800',
    (t, v) => {
      v.count(1);
      t.config.autosaveInterval = v.int(0, 0, 31_536_000);
    },
  ),
  g('autosave_on_changes', 'true | false', 'Accepted for compatibility: mqprobe saves by time only.', 'false', (t, v) => {
    v.count(1);
    t.config.autosaveOnChanges = v.bool();
  }),
  g(
    'max_connections',
    '<count>',
    'Before any listener: default limit of clients per listener. -1 = unlimited. Inside a listener block: that listener only.',
    '-1',
    (t, v) => {
      v.count(1);
      t.listener().maxConnections = v.int(0, -1, 10_000_000);
    },
  ),
  {
    key: 'listener',
    usage: '<port> [bind address or host]',
    doc: 'Opens a listener block: the keys that follow (protocol, TLS, mount_point, …) apply to it.',
    scope: 'global',
    repeatable: true,
    set() {
      // handled by the loader, which opens the block; listed here for validation and docs
    },
  },
  l(
    'port',
    '<port>',
    "Deprecated Mosquitto form of the default listener's port (same as a `listener <port>` without bind address).",
    '1883',
    (lst, v) => {
      v.count(1);
      lst.port = v.port();
    },
  ),
  l('bind_address', '<address>', 'Deprecated Mosquitto form: the address the default listener binds.', undefined, (lst, v) => {
    v.count(1);
    lst.bind = v.word();
  }),
  l(
    'protocol',
    'mqtt | websockets',
    "The listener's protocol. `websockets` serves MQTT over WebSockets (and over secure WebSockets with the TLS keys).",
    'mqtt',
    (lst, v) => {
      v.count(1);
      lst.protocol = v.oneOf(['mqtt', 'websockets'] as const);
    },
  ),
  l('socket_domain', 'ipv4 | ipv6', 'Restrict the listener to one address family.', undefined, (lst, v) => {
    v.count(1);
    lst.socketDomain = v.oneOf(['ipv4', 'ipv6'] as const);
  }),
  l(
    'mount_point',
    '<prefix>',
    'Topic prefix added to everything clients of this listener publish and subscribe, and removed on delivery.',
    undefined,
    (lst, v) => {
      v.count(1);
      const mp = v.word();
      if (/[+#]/.test(mp)) v.fail('mount_point must not contain wildcards');
      lst.mountPoint = mp;
    },
  ),
  l('use_username_as_clientid', 'true | false', 'Replace the client id with the user name.', 'false', (lst, v) => {
    v.count(1);
    lst.useUsernameAsClientid = v.bool();
  }),
  ...(['cafile', 'capath', 'certfile', 'keyfile', 'crlfile'] as const).map((k) =>
    l(
      k,
      '<path>',
      `TLS: ${{ cafile: 'CA bundle for client certificates', capath: 'directory of CA certificates (PEM files) for client certificates', certfile: 'server certificate (PEM); setting it makes the listener TLS', keyfile: 'server private key (PEM)', crlfile: 'certificate revocation list (PEM)' }[k]}.`,
      undefined,
      (lst, v) => {
        v.count(1);
        lst.tls[k] = v.path();
      },
    ),
  ),
  proxyProtocolKey,
  ...mosquitto21Keys,
  l('ciphers', '<openssl cipher list>', 'TLS 1.2 cipher list.', undefined, (lst, v) => {
    v.count(1);
    lst.tls.ciphers = v.word();
  }),
  l('require_certificate', 'true | false', 'TLS: clients must present a certificate signed by cafile/capath.', 'false', (lst, v) => {
    v.count(1);
    lst.tls.requireCertificate = v.bool();
  }),
  l(
    'use_identity_as_username',
    'true | false',
    "TLS: the client certificate's subject CN becomes the user name (and no password is needed).",
    'false',
    (lst, v) => {
      v.count(1);
      lst.tls.useIdentityAsUsername = v.bool();
    },
  ),
  l('use_subject_as_username', 'true | false', "TLS: the client certificate's full subject becomes the user name.", 'false', (lst, v) => {
    v.count(1);
    lst.tls.useSubjectAsUsername = v.bool();
  }),
  l('tls_version', 'tlsv1.3 | tlsv1.2 | tlsv1.1', 'Lowest TLS version accepted.', 'tlsv1.2', (lst, v) => {
    v.count(1);
    lst.tls.tlsVersion = v.oneOf(['tlsv1.1', 'tlsv1.2', 'tlsv1.3'] as const);
  }),
];

/** mqprobe's own broker keys (area prefixes persistence_redis_, http_). */
export const mqprobeBrokerKeys: KeySpec<BrokerTarget>[] = [
  g(
    'global_max_queued_bytes',
    '<bytes>',
    'Unsent bytes all connections together may hold (mqprobe; Mosquitto has only per-client limits and memory_limit). Over it, QoS 0 messages to the clients that hold more unsent data than the average of those holding any are dropped and counted (publish/messages/dropped), so a few slow readers cannot take the memory of everyone and readers that keep up lose nothing; QoS 1/2 messages are limited per client by max_queued_messages. 0 = no global bound.',
    '268435456',
    (t, v) => {
      v.count(1);
      t.config.globalMaxQueuedBytes = v.int(0, 0, 64 * 1024 * 1024 * 1024);
    },
  ),
  g(
    'persistence_redis_url',
    'redis://host:port/db',
    'Keep broker state in Redis and route messages through it, so several mqprobe processes act as one broker.',
    undefined,
    (t, v) => {
      v.count(1);
      const u = v.word();
      if (!/^rediss?:\/\//.test(u)) v.fail(`expected a redis:// or rediss:// URL, got "${u.replace(/\/\/[^@/]*@/, '//***@')}"`);
      t.config.persistenceRedisUrl = u;
    },
  ),
  g(
    'broker_connect_timeout',
    '<seconds>',
    'A connection that has not sent CONNECT after this long is closed (and captured as a protocol error).',
    '30',
    (t, v) => {
      v.count(1);
      t.config.connectTimeout = v.int(0, 1, 3600);
    },
  ),
  g(
    'http_listener',
    '<port> [bind address]',
    'HTTP side-server for /metrics (Prometheus), /healthz, /sse and bridge endpoints.',
    undefined,
    (t, v) => {
      v.count(1, 2);
      t.config.http = { port: v.port(0), bind: v.optionalWord(1) };
    },
  ),
  ...httpAuthKeys,
  ...sseKeys,
  ...mqprobeLogKeys,
];

/**
 * Mosquitto keys accepted with a warning because mqprobe does not implement them (yet):
 * a Mosquitto config keeps loading, and the operator is told what is ignored. A key whose
 * absence would change who gets in (plugins, psk_file) is not here: it stops the start.
 */
export const unimplementedMosquittoKeys = new Set([
  'allow_duplicate_messages',
  'auth_plugin_deny_special_chars',
  'check_retain_source',
  'clientid_prefixes',
  'max_inflight_bytes',
  'memory_limit',
  'queue_qos0_messages',
  'upgrade_outgoing_qos',
  'websockets_log_level',
  'websockets_headers_size',
  'bind_interface',
  'http_dir',
  'dhparamfile',
  'ciphers_tls1.3',
  'psk_hint',
  'tls_engine',
  'tls_engine_kpass_sha1',
  'tls_keyform',
]);
