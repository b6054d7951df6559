import type { SourcePos, ConfigWarning } from './errors.js';
import type { ConfigLine } from './lexer.js';
import type { SseConfig } from '../http/sse-config.js';
import type { HttpAuthConfig } from '../http-tokens.js';
import type { BridgeConfig } from '../bridge/config.js';

/** Security settings: global, or per listener when `per_listener_settings true`. */
export interface SecurityConfig {
  allowAnonymous?: boolean;
  passwordFile?: string;
  aclFile?: string;
  /** The dynamic security plugin's JSON file (`plugin …mosquitto_dynamic_security.so` + `plugin_opt_config_file`). */
  dynamicSecurityFile?: string;
}

export interface TlsConfig {
  cafile?: string;
  capath?: string;
  certfile?: string;
  keyfile?: string;
  ciphers?: string;
  crlfile?: string;
  requireCertificate: boolean;
  useIdentityAsUsername: boolean;
  useSubjectAsUsername: boolean;
  tlsVersion?: 'tlsv1.1' | 'tlsv1.2' | 'tlsv1.3';
}

export interface ListenerConfig {
  pos: SourcePos;
  port: number;
  bind?: string;
  protocol: 'mqtt' | 'websockets';
  socketDomain?: 'ipv4' | 'ipv6';
  /** Local-only mode's ::1 socket: where the host has no IPv6 loopback, failing to bind it is a warning. */
  optional?: boolean;
  /** -1 = unlimited, as Mosquitto. */
  maxConnections: number;
  mountPoint?: string;
  useUsernameAsClientid: boolean;
  /** enable_proxy_protocol: a PROXY protocol header of this version precedes MQTT (broker/proxy-protocol.ts). */
  proxyProtocol?: 1 | 2;
  /** Mosquitto 2.1 listener keys (broker/config/mosquitto21-keys.ts). */
  allowAnonymous?: boolean;
  autoIdPrefix?: string;
  acceptProtocolVersions?: number[];
  websocketsOrigins?: string[];
  tls: TlsConfig;
  security: SecurityConfig;
}

export type LogDest =
  { kind: 'stdout' } | { kind: 'stderr' } | { kind: 'file'; path: string } | { kind: 'none' } | { kind: 'syslog' } | { kind: 'topic' };

/** A `beat <name>` block: its lines, validated by the bridge that owns the name. */
export interface BeatBlock {
  name: string;
  pos: SourcePos;
  lines: ConfigLine[];
}

export interface BrokerConfig {
  /** The main config file, or undefined when running on built-in defaults. */
  file?: string;
  perListenerSettings: boolean;
  security: SecurityConfig;
  listeners: ListenerConfig[];
  /** True when no listener was configured and Mosquitto 2.0's local-only default applies. */
  localOnly: boolean;
  allowZeroLengthClientid: boolean;
  autoIdPrefix: string;
  /** Seconds a connection may stay without CONNECT. */
  connectTimeout: number;
  maxPacketSize: number;
  messageSizeLimit: number;
  maxKeepalive: number;
  maxQueuedMessages: number;
  maxInflightMessages: number;
  /** max_queued_bytes (0 = the built-in 64 MiB). */
  maxQueuedBytes: number;
  /** global_max_queued_bytes: unsent bytes across every connection; 0 = no bound. */
  globalMaxQueuedBytes: number;
  retainAvailable: boolean;
  /** max_topic_alias: topic aliases an MQTT 5 client may use towards the broker (0: none). */
  maxTopicAlias: number;
  /** max_qos: highest QoS a client may publish and subscribe with. */
  maxQos: 0 | 1 | 2;
  /** persistent_client_expiration in seconds (undefined: persistent sessions never expire). */
  persistentClientExpiration?: number;
  /** set_tcp_nodelay: TCP_NODELAY on client sockets (Nagle's algorithm off). */
  setTcpNodelay: boolean;
  sysInterval: number;
  logDest: LogDest[];
  logType: Set<string>;
  /** log_format, log_timestamp, log_timestamp_format, log_facility (broker/log/settings.ts). */
  log: LogSettings;
  connectionMessages: boolean;
  pidFile?: string;
  /** global_max_clients / global_max_connections (undefined = unlimited). */
  globalMaxClients?: number;
  globalMaxConnections?: number;
  /** `user`: who the broker becomes when started as root (undefined = `mosquitto`, broker/privileges.ts). */
  user?: string;
  persistence: boolean;
  persistenceLocation: string;
  persistenceFile: string;
  autosaveInterval: number;
  autosaveOnChanges: boolean;
  persistenceRedisUrl?: string;
  http?: { port: number; bind?: string };
  /** `http_sse_*` keys; defaults when none is given. */
  sse?: SseConfig;
  /** `http_token_file`, `http_metrics_token_file`. */
  httpAuth?: HttpAuthConfig;
  beats: BeatBlock[];
  /** `connection <name>` blocks: Mosquitto bridges (broker/bridge/). */
  bridges: BridgeConfig[];
  warnings: ConfigWarning[];
}

/**
 * What a key writes into: the broker config, the listener being defined (or the default
 * listener made by `port`), and the security section that `per_listener_settings` selects.
 */
export interface BrokerTarget {
  config: BrokerConfig;
  listener(): ListenerConfig;
  security(): SecurityConfig;
}

/** How log lines look and where syslog lines go (log_dest and log_type stay in BrokerConfig). */
export interface LogSettings {
  /** `mosquitto`: Mosquitto's text lines; `json`: one pino JSON object per line. */
  format: 'mosquitto' | 'json';
  timestamp: boolean;
  /** strftime format; undefined = Unix seconds, Mosquitto's default. */
  timestampFormat?: string;
  /** log_facility 0–7 = LOG_LOCAL0–7; undefined = LOG_DAEMON, Mosquitto's default. */
  facility?: number;
  /** The local syslog socket (`/dev/log`, where glibc's syslog(3) writes). */
  syslogSocket: string;
}
