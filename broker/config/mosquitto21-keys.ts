import type { KeySpec, ValueReader } from './spec.js';
import type { BrokerTarget } from './types.js';
import type { ListenerConfig } from './types.js';

/**
 * Mosquitto 2.1's newer keys. Those that only mean something in MQTT 5 are accepted with the
 * meaning they have for MQTT 3.1/3.1.1 (what mqprobe speaks) and a warning naming file and line.
 */
type Spec = KeySpec<BrokerTarget>;

function warn(t: BrokerTarget, v: ValueReader, message: string): void {
  t.config.warnings.push({ file: v.line.file, line: v.line.line, key: v.key, message });
}

function listenerKey(
  key: string,
  usage: string,
  doc: string,
  dflt: string | undefined,
  set: (l: ListenerConfig, v: ValueReader, t: BrokerTarget) => void,
  repeatable = false,
): Spec {
  return { key, usage, doc, default: dflt, scope: 'listener', repeatable, set: (t, v) => set(t.listener(), v, t) };
}

function globalLimit(key: string, doc: string, set: (t: BrokerTarget, n: number | undefined) => void): Spec {
  return {
    key,
    usage: '<count>',
    doc,
    default: '-1',
    scope: 'global',
    set(t, v) {
      v.count(1);
      const n = v.int(0, -1, 10_000_000);
      set(t, n > 0 ? n : undefined);
    },
  };
}

export const mosquitto21Keys: Spec[] = [
  listenerKey(
    'listener_allow_anonymous',
    'true | false',
    'Whether clients without a user name may connect to this listener, whatever per_listener_settings says (Mosquitto 2.1). Overrides allow_anonymous for this listener.',
    undefined,
    (l, v) => {
      v.count(1);
      l.allowAnonymous = v.bool();
    },
  ),
  listenerKey(
    'listener_auto_id_prefix',
    '<prefix>',
    'Prefix of client ids assigned on this listener to clients that sent an empty one (Mosquitto 2.1). Overrides auto_id_prefix for this listener.',
    undefined,
    (l, v) => {
      v.count(1);
      l.autoIdPrefix = v.word();
    },
  ),
  listenerKey(
    'accept_protocol_versions',
    '<versions, e.g. 3, 4>',
    'MQTT protocol versions this listener accepts: 3 = MQTT 3.1, 4 = 3.1.1, 5 = 5.0 (Mosquitto 2.1). A CONNECT with another version is refused: CONNACK 1, or 0x84 for an MQTT 5 client.',
    'all',
    (l, v) => {
      const versions = v
        .rest()
        .split(/[\s,]+/)
        .filter(Boolean);
      const bad = versions.find((x) => !['3', '4', '5'].includes(x));
      if (bad) v.fail(`expected 3, 4 or 5, got "${bad}"`);
      l.acceptProtocolVersions = [...new Set(versions.map(Number))];
    },
  ),
  listenerKey(
    'max_topic_alias_broker',
    '<count>',
    'MQTT 5 only (Mosquitto 2.1): topic aliases the broker may use towards clients. mqprobe sends every topic in full (as Mosquitto 2.0 does): accepted with a warning and without effect.',
    '10',
    (_l, v, t) => {
      v.count(1);
      v.int(0, 0, 65535);
      warn(t, v, 'mqprobe uses no topic aliases towards clients; no effect');
    },
  ),
  listenerKey(
    'websockets_origin',
    '<origin>',
    'On a websockets listener: an allowed Origin header (repeat for several, e.g. `https://app.example.com`). Once one is given, a WebSocket upgrade with another Origin, or none, is refused with 403 (Mosquitto 2.1).',
    undefined,
    (l, v) => {
      v.count(1);
      (l.websocketsOrigins ??= []).push(v.word());
    },
    true,
  ),
  globalLimit(
    'global_max_clients',
    'Most connected clients across the whole broker (Mosquitto 2.1); a CONNECT beyond it is refused (CONNACK 3, server unavailable). -1 = unlimited. Unlike Mosquitto, offline persistent sessions do not count.',
    (t, n) => {
      t.config.globalMaxClients = n;
    },
  ),
  globalLimit(
    'global_max_connections',
    'Most open network connections across the whole broker (Mosquitto 2.1); a connection beyond it is closed at once with Mosquitto\'s line "Client connection from <address> denied: max_connections exceeded.". -1 = unlimited.',
    (t, n) => {
      t.config.globalMaxConnections = n;
    },
  ),
];
