import { ConfigError, type ConfigWarning } from './errors.js';
import { readConfigLines, type ConfigLine } from './lexer.js';
import { ValueReader, specIndex, type KeySpec } from './spec.js';
import { mosquittoKeys, mqprobeBrokerKeys, unimplementedMosquittoKeys, type BrokerTarget } from './broker-keys.js';
import { applyPlugins, prefixedKey } from '../auth/plugins.js';
import type { BrokerConfig, ListenerConfig, SecurityConfig } from './types.js';
import { captureKeys, defaultCaptureConfig } from '../../capture/config.js';
import { detectKeys, defaultDetectConfig } from '../../capture/detect-config.js';
import { validateBeats } from '../../bridges/index.js';
import { defaultLogSettings } from '../log/settings.js';
import { validateProxyListener } from '../proxy-protocol.js';

export const DEFAULT_PORT = 1883;

export function newListener(port: number, pos = { file: '<default>', line: 0 }, maxConnections = -1): ListenerConfig {
  return {
    pos,
    port,
    protocol: 'mqtt',
    maxConnections,
    useUsernameAsClientid: false,
    tls: { requireCertificate: false, useIdentityAsUsername: false, useSubjectAsUsername: false },
    security: {},
  };
}

export function defaultBrokerConfig(): BrokerConfig {
  return {
    perListenerSettings: false,
    security: {},
    listeners: [],
    localOnly: false,
    allowZeroLengthClientid: true,
    autoIdPrefix: 'auto-',
    connectTimeout: 30,
    maxPacketSize: 2_000_000,
    messageSizeLimit: 0,
    maxKeepalive: 65535,
    maxQueuedMessages: 1000,
    maxInflightMessages: 20,
    maxQueuedBytes: 0,
    retainAvailable: true,
    setTcpNodelay: false,
    sysInterval: 10,
    logDest: [],
    logType: new Set(),
    log: defaultLogSettings(),
    connectionMessages: true,
    persistence: false,
    persistenceLocation: process.cwd(),
    persistenceFile: 'mqprobe.db',
    autosaveInterval: 1800,
    autosaveOnChanges: false,
    capture: defaultCaptureConfig(),
    detect: defaultDetectConfig(),
    beats: [],
    warnings: [],
  };
}

type AnySpec = KeySpec<BrokerTarget>;
/** Every key the broker understands outside beat blocks, in one table: docs are generated from it. */
export const brokerKeyTable: { area: string; specs: KeySpec<never>[] }[] = [
  { area: 'Mosquitto', specs: mosquittoKeys as KeySpec<never>[] },
  { area: 'Broker (mqprobe)', specs: mqprobeBrokerKeys as KeySpec<never>[] },
  { area: 'Capture', specs: captureKeys as KeySpec<never>[] },
  { area: 'Detection', specs: detectKeys as KeySpec<never>[] },
];

const brokerSpecs = specIndex<BrokerTarget>([...mosquittoKeys, ...mqprobeBrokerKeys]);
const captureSpecs = specIndex(captureKeys);
const detectSpecs = specIndex(detectKeys);

export interface LoadOptions {
  /** `-p`: replaces the configured listeners' ports, like Mosquitto's -p. */
  ports?: number[];
}

/**
 * Loads a Mosquitto-style config file (or the built-in default when `file` is undefined):
 * Mosquitto keys with Mosquitto 2.0 semantics, mqprobe keys by area prefix, and `beat` blocks.
 * Throws ConfigError naming file, line and key.
 */
export function loadConfig(file: string | undefined, opts: LoadOptions = {}): BrokerConfig {
  const config = defaultBrokerConfig();
  config.file = file;
  const lines = file ? readConfigLines(file) : [];
  // Mosquitto reads per_listener_settings before any security key, wherever it stands.
  const pls = lines.filter((l) => l.key === 'per_listener_settings').pop();
  if (pls) config.perListenerSettings = new ValueReader(pls).count(1).bool();

  const defaultListener = newListener(DEFAULT_PORT);
  let defaultListenerUsed = false;
  let current: ListenerConfig | undefined;
  let beat: BrokerConfig['beats'][number] | undefined;

  const target: BrokerTarget = {
    config,
    listener: () => current ?? defaultListener,
    security: (): SecurityConfig => (config.perListenerSettings ? (current ?? defaultListener).security : config.security),
  };

  for (const line of lines) {
    const v = new ValueReader(line);
    if (line.key === 'beat') {
      v.count(1);
      const name = v.word();
      if (!/^[a-z][a-z0-9_]*$/.test(name)) v.fail(`expected a beat name such as zeek or fleet, got "${name}"`);
      if (config.beats.some((b) => b.name === name)) v.fail(`beat ${name} is configured twice`);
      beat = { name, pos: line, lines: [] };
      config.beats.push(beat);
      continue;
    }
    if (beat && (line.key.startsWith('beat_') || line.key.startsWith(`${beat.name}_`))) {
      beat.lines.push(line);
      continue;
    }
    if (line.key === 'listener') {
      v.count(1, 2);
      current = newListener(v.port(0), line, defaultListener.maxConnections);
      current.bind = v.optionalWord(1);
      config.listeners.push(current);
      continue;
    }
    const spec: AnySpec | undefined = brokerSpecs.get(line.key) ?? brokerSpecs.get(prefixedKey(line.key) ?? '');
    if (spec) {
      if (spec.scope === 'listener' && !current) defaultListenerUsed = true;
      spec.set(target, v);
      continue;
    }
    const cs = captureSpecs.get(line.key);
    if (cs) {
      cs.set(config.capture, v);
      continue;
    }
    const ds = detectSpecs.get(line.key);
    if (ds) {
      ds.set(config.detect, v);
      continue;
    }
    if (unimplementedMosquittoKeys.has(line.key)) {
      config.warnings.push(warning(line, 'Mosquitto option not implemented by mqprobe; ignored'));
      continue;
    }
    if (line.key.startsWith('beat_') || isBeatPrefixed(line.key)) {
      throw new ConfigError(line, line.key, 'beat keys belong inside the block of their beat (after `beat <name>`)');
    }
    throw new ConfigError(line, line.key, 'unknown configuration key (see docs/configuration.md)');
  }

  if (defaultListenerUsed || (config.listeners.length === 0 && file && lines.some((l) => l.key === 'port'))) {
    config.listeners.unshift(defaultListener);
  }
  if (config.listeners.length === 0) {
    // Mosquitto 2.0: with no listener configured, listen on the loopback interface only
    // and allow anonymous clients unless told otherwise.
    config.localOnly = true;
    config.listeners.push({ ...defaultListener, bind: '127.0.0.1' }, { ...defaultListener, bind: '::1', optional: true });
    if (config.security.allowAnonymous === undefined) config.security.allowAnonymous = true;
  }
  if (opts.ports?.length) {
    // -p replaces the configured listeners; in local-only mode each port keeps both loopback sockets
    const bases = config.localOnly ? config.listeners : [config.listeners[0]];
    config.listeners = opts.ports.flatMap((port) => bases.map((base) => ({ ...base, port, pos: { file: '<command line>', line: 0 } })));
  }
  applyPlugins(config);
  validateListeners(config);
  validateBeats(config.beats);
  return config;
}

const BEAT_PREFIXES = ['zeek_', 'fleet_', 'osquery_', 'opencti_', 'fiware_', 'opcua_', 'things_'];
function isBeatPrefixed(key: string): boolean {
  return BEAT_PREFIXES.some((p) => key.startsWith(p));
}

function warning(line: ConfigLine, message: string): ConfigWarning {
  return { file: line.file, line: line.line, key: line.key, message };
}

function validateListeners(config: BrokerConfig): void {
  const seen = new Map<string, ListenerConfig>();
  for (const l of config.listeners) {
    const id = `${l.bind ?? '*'}:${l.port}`;
    const prev = seen.get(id);
    if (prev && l.port !== 0) throw new ConfigError(l.pos, 'listener', `port ${l.port} is already used by the listener at ${prev.pos.file}:${prev.pos.line}`);
    seen.set(id, l);
    validateProxyListener(l);
    const t = l.tls;
    if ((t.certfile && !t.keyfile) || (!t.certfile && t.keyfile)) throw new ConfigError(l.pos, 'certfile', 'certfile and keyfile must be given together');
    if (t.requireCertificate && !t.cafile && !t.capath) throw new ConfigError(l.pos, 'require_certificate', 'require_certificate needs cafile or capath');
    if ((t.useIdentityAsUsername || t.useSubjectAsUsername) && !t.requireCertificate) {
      throw new ConfigError(l.pos, 'use_identity_as_username', 'needs require_certificate true');
    }
  }
}
