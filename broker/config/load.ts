import { ConfigError, type ConfigWarning } from './errors.js';
import { readConfigLines, type ConfigLine } from './lexer.js';
import { ValueReader, specIndex, type KeySpec } from './spec.js';
import { mosquittoKeys, mqprobeBrokerKeys, unimplementedMosquittoKeys, type BrokerTarget } from './broker-keys.js';
import { applyPlugins, prefixedKey } from '../auth/plugins.js';
import type { BeatBlock, BrokerConfig, ListenerConfig, SecurityConfig } from './types.js';
import { defaultLogSettings } from '../log/settings.js';
import { validateProxyListener } from '../proxy-protocol.js';
import { bridgeKeys, isBridgeKey, readBridgeLine, validateBridges } from '../bridge/config.js';

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
    globalMaxQueuedBytes: 256 * 1024 * 1024,
    retainAvailable: true,
    maxTopicAlias: 10,
    maxQos: 2,
    setTcpNodelay: true,
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
    beats: [],
    bridges: [],
    warnings: [],
  };
}

type AnySpec = KeySpec<BrokerTarget>;
/** The broker's own keys, by area: docs are generated from this table and the upper areas' (app/config.ts). */
export const brokerKeyTable: { area: string; specs: KeySpec<never>[] }[] = [
  { area: 'Mosquitto', specs: mosquittoKeys as KeySpec<never>[] },
  { area: 'Broker (mqprobe)', specs: mqprobeBrokerKeys as KeySpec<never>[] },
  { area: 'Bridges (Mosquitto `connection` blocks, docs/bridges.md)', specs: bridgeKeys as KeySpec<never>[] },
];

const brokerSpecs = specIndex<BrokerTarget>([...mosquittoKeys, ...mqprobeBrokerKeys]);

/** One upper area's keys (capture_*, detect_* …), each writing into that area's part `T` of the loaded config. */
export interface AreaKeys<X> {
  area: string;
  specs: KeySpec<never>[];
  /** The object this area's keys write into. */
  target(config: X): unknown;
}

/**
 * What the areas built on the broker add to its config file, handed in by the composition root (app/config.ts)
 * so that the broker's loader imports nothing above it.
 */
export interface ConfigExtension<X extends object> {
  /** Each area's config with its defaults. */
  defaults(): X;
  keys: AreaKeys<X>[];
  /** Checks the `beat <name>` blocks (file:line:key errors); their owner knows their keys. */
  validateBlocks(blocks: BeatBlock[]): void;
  /** Key prefixes that belong inside a block (outside one they get a clear error, not "unknown key"). */
  blockKeyPrefixes: string[];
  /** Checks across an area's keys, once the whole file is read (e.g. `capture_queue disk` needs `capture_spool_dir`). */
  validate?(config: X): void;
}

const NO_EXTENSION: ConfigExtension<object> = { defaults: () => ({}), keys: [], validateBlocks: () => undefined, blockKeyPrefixes: [] };

export interface LoadOptions {
  /** `-p`: replaces the configured listeners' ports, like Mosquitto's -p. */
  ports?: number[];
}

/**
 * Loads a Mosquitto-style config file (or the built-in default when `file` is undefined):
 * Mosquitto keys with Mosquitto 2.0 semantics, mqprobe keys by area prefix, and `beat` blocks.
 * Throws ConfigError naming file, line and key.
 */
export function loadConfig<X extends object = object>(
  file: string | undefined,
  opts: LoadOptions = {},
  ext: ConfigExtension<X> = NO_EXTENSION as ConfigExtension<X>,
): BrokerConfig & X {
  const config: BrokerConfig & X = { ...defaultBrokerConfig(), ...ext.defaults() };
  const areaSpecs = new Map<string, { spec: KeySpec<unknown>; target: (c: X) => unknown }>();
  for (const a of ext.keys) for (const spec of a.specs) areaSpecs.set(spec.key, { spec: spec as KeySpec<unknown>, target: a.target });
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
    if (line.key === 'connection' || isBridgeKey(line.key)) {
      readBridgeLine(config.bridges, line);
      continue;
    }
    const spec: AnySpec | undefined = brokerSpecs.get(line.key) ?? brokerSpecs.get(prefixedKey(line.key) ?? '');
    if (spec) {
      if (spec.scope === 'listener' && !current) defaultListenerUsed = true;
      spec.set(target, v);
      continue;
    }
    const area = areaSpecs.get(line.key);
    if (area) {
      area.spec.set(area.target(config), v);
      continue;
    }
    if (unimplementedMosquittoKeys.has(line.key)) {
      config.warnings.push(warning(line, 'Mosquitto option not implemented by mqprobe; ignored'));
      continue;
    }
    if (line.key.startsWith('beat_') || ext.blockKeyPrefixes.some((p) => line.key.startsWith(p))) {
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
  validateBridges(config.bridges, !!config.security.aclFile || config.listeners.some((l) => l.security.aclFile));
  ext.validateBlocks(config.beats);
  ext.validate?.(config);
  return config;
}

function warning(line: ConfigLine, message: string): ConfigWarning {
  return { file: line.file, line: line.line, key: line.key, message };
}

function validateListeners(config: BrokerConfig): void {
  const seen = new Map<string, ListenerConfig>();
  for (const l of config.listeners) {
    const id = `${l.bind ?? '*'}:${l.port}`;
    const prev = seen.get(id);
    if (prev && l.port !== 0)
      throw new ConfigError(l.pos, 'listener', `port ${l.port} is already used by the listener at ${prev.pos.file}:${prev.pos.line}`);
    seen.set(id, l);
    validateProxyListener(l);
    const t = l.tls;
    if ((t.certfile && !t.keyfile) || (!t.certfile && t.keyfile))
      throw new ConfigError(l.pos, 'certfile', 'certfile and keyfile must be given together');
    if (t.requireCertificate && !t.cafile && !t.capath)
      throw new ConfigError(l.pos, 'require_certificate', 'require_certificate needs cafile or capath');
    if ((t.useIdentityAsUsername || t.useSubjectAsUsername) && !t.requireCertificate) {
      throw new ConfigError(l.pos, 'use_identity_as_username', 'needs require_certificate true');
    }
  }
}
