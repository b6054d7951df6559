import type { KeySpec, MosquittoParity } from './spec.js';

const SAME = 'same';
const differs = (how: string): MosquittoParity => ({ differs: how });
const unsupported = (why: string): MosquittoParity => ({ unsupported: why });

/**
 * How each Mosquitto key mqprobe reads compares with Mosquitto 2.0.11 (and 2.1 for its keys): the
 * Mosquitto column of docs/configuration.md. Kept as one table beside the key declarations (which
 * several areas and branches edit); withMosquittoParity puts each entry on its KeySpec, and the
 * config-docs test checks that every key of the Mosquitto table has one and none names an unknown key.
 */
export const MOSQUITTO_PARITY: Record<string, MosquittoParity> = {
  per_listener_settings: SAME,
  allow_anonymous: SAME,
  password_file: SAME,
  acl_file: differs('a `%u`/`%c` pattern grant never matches a user name or client id containing `/` (docs/security.md)'),
  plugin: differs(
    'no shared objects are loaded: mosquitto_password_file, mosquitto_acl_file and mosquitto_dynamic_security are implemented by mqprobe, any other plugin stops the start; dynamic security with password_file/acl_file on the same listeners is refused (Mosquitto chains them)',
  ),
  auth_plugin: differs('as `plugin`'),
  global_plugin: differs('as `plugin`'),
  plugin_load: differs('as `plugin`'),
  plugin_use: differs('as `plugin`; needs per_listener_settings true'),
  'plugin_opt_*': differs(
    'an option the file plugins do not take stops the start; the dynamic security plugin ignores other options (a warning)',
  ),
  psk_file: unsupported('TLS-PSK: the line stops the start'),
  allow_zero_length_clientid: SAME,
  auto_id_prefix: differs('assigned ids are the prefix and a UUID'),
  max_packet_size: differs('default 2000000 (Mosquitto 2.1), Mosquitto 2.0 has no limit'),
  message_size_limit: SAME,
  max_keepalive: differs(
    'a client asking for more is refused, as Aedes does (Mosquitto 2.0 answers with its own keepalive for MQTT 5 only)',
  ),
  max_queued_messages: differs('counted together with max_inflight_messages: Aedes has no separate in-flight window'),
  max_inflight_messages: differs(
    'counts toward the max_queued_messages limit; advertised to MQTT 5 clients as their receive maximum, which mqprobe enforces towards the broker but not yet towards the client',
  ),
  max_queued_bytes: differs('0 means 8 MiB, only QoS 0 messages are dropped, and global_max_queued_bytes bounds all clients together'),
  set_tcp_nodelay: differs(
    'default true (Mosquitto: false), and what is written to a connection in one event-loop pass leaves in one write',
  ),
  max_topic_alias: differs('aliases from the client only; the broker uses none towards clients (as Mosquitto 2.0)'),
  max_qos: SAME,
  persistent_client_expiration: differs('MQTT 5 clients asking for longer are told the shorter interval in their CONNACK'),
  retain_available: SAME,
  sys_interval: differs(
    'the same $SYS/broker topics; store/messages/count and /bytes count the retained messages only (Mosquitto adds queued ones)',
  ),
  log_dest: differs('`dlt` is taken as syslog'),
  log_type: SAME,
  log_timestamp: SAME,
  log_timestamp_format: differs('a strftime conversion mqprobe does not know stops the start'),
  log_facility: SAME,
  connection_messages: SAME,
  pid_file: SAME,
  user: SAME,
  persistence: differs("mqprobe's own snapshot file; a Mosquitto db is imported once, never written (docs/persistence.md)"),
  persistence_location: SAME,
  persistence_file: differs('a Mosquitto db of that name is imported once and kept; the snapshot is `<name>.mqprobe.json`'),
  autosave_interval: SAME,
  autosave_on_changes: unsupported('accepted; mqprobe saves by time only'),
  max_connections: differs(
    'only connections whose CONNECT was accepted count; Mosquitto 2.0.11 lets one more client in for each connection closed before its CONNECT',
  ),
  listener: SAME,
  port: SAME,
  bind_address: SAME,
  protocol: SAME,
  socket_domain: SAME,
  mount_point: SAME,
  use_username_as_clientid: SAME,
  cafile: SAME,
  capath: SAME,
  certfile: SAME,
  keyfile: SAME,
  crlfile: SAME,
  enable_proxy_protocol: differs('plain mqtt listeners only'),
  listener_allow_anonymous: SAME,
  listener_auto_id_prefix: SAME,
  accept_protocol_versions: differs('5 is accepted with a warning: MQTT 5 is not spoken yet'),
  max_topic_alias_broker: unsupported('MQTT 5 only: accepted with a warning'),
  websockets_origin: SAME,
  global_max_clients: differs('offline persistent sessions do not count'),
  global_max_connections: SAME,
  ciphers: SAME,
  require_certificate: SAME,
  use_identity_as_username: SAME,
  use_subject_as_username: SAME,
  tls_version: SAME,
};

/** The specs with their Mosquitto column set from MOSQUITTO_PARITY (a value declared on a spec itself wins). */
export function withMosquittoParity<T>(specs: KeySpec<T>[]): KeySpec<T>[] {
  return specs.map((s) => (s.mosquitto || !(s.key in MOSQUITTO_PARITY) ? s : { ...s, mosquitto: MOSQUITTO_PARITY[s.key] }));
}

/** The column text. */
export function describeParity(p: MosquittoParity | undefined): string {
  if (p === undefined) return '— (mqprobe key)';
  if (p === 'same') return 'same';
  return 'differs' in p ? `differs: ${p.differs}` : `not supported: ${p.unsupported}`;
}
