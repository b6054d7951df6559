import { ConfigError } from '../../broker/config/errors.js';
import type { KeySpec } from '../../broker/config/spec.js';
import type { BeatBlock } from '../../broker/config/types.js';
import { parseMonitor, type MonitorSpec } from './monitor-spec.js';

export const SECURITY_POLICIES = ['None', 'Basic256Sha256', 'Aes128_Sha256_RsaOaep', 'Aes256_Sha256_RsaPss'] as const;
export const SECURITY_MODES = ['None', 'Sign', 'SignAndEncrypt'] as const;
export const TRIGGERS = ['status', 'status_value', 'status_value_timestamp'] as const;

export type Deadband = { kind: 'none' } | { kind: 'absolute' | 'percent'; value: number };

export interface OpcuaConfig {
  name?: string;
  endpoint?: string;
  securityPolicy: (typeof SECURITY_POLICIES)[number];
  securityMode: (typeof SECURITY_MODES)[number];
  username?: string;
  passwordFile?: string;
  monitors: MonitorSpec[];
  /** Default `<persistence_location>/opcua-pki` (resolved at start). */
  pkiDir?: string;
  certificateFile?: string;
  privateKeyFile?: string;
  serverCertificateFiles: string[];
  trustOnFirstUse: boolean;
  samplingIntervalMs: number;
  publishingIntervalMs: number;
  queueSize: number;
  deadband: Deadband;
  trigger: (typeof TRIGGERS)[number];
  rebrowseIntervalMs: number;
  maxMonitoredItems: number;
}

export function defaultOpcuaConfig(): OpcuaConfig {
  return {
    securityPolicy: 'None',
    securityMode: 'None',
    monitors: [],
    serverCertificateFiles: [],
    trustOnFirstUse: false,
    samplingIntervalMs: 1000,
    publishingIntervalMs: 1000,
    queueSize: 100,
    deadband: { kind: 'none' },
    trigger: 'status_value',
    rebrowseIntervalMs: 5 * 60_000,
    maxMonitoredItems: 10_000,
  };
}

export const opcuaKeys: KeySpec<OpcuaConfig>[] = [
  {
    key: 'opcua_name',
    usage: '<name>',
    doc: 'Name of this OPC-UA server in topics (`beats/opcua/<name>/...`) and entity ids; one topic level.',
    scope: 'beat',
    set(c, v) {
      const name = v.count(1).word();
      if (/[/+#]|\0/.test(name)) v.fail(`expected one topic level without / + # , got "${name}"`);
      c.name = name;
    },
  },
  {
    key: 'opcua_endpoint',
    usage: 'opc.tcp://host:4840[/path]',
    doc: 'Endpoint URL of the OPC-UA server.',
    scope: 'beat',
    set(c, v) {
      const url = v.count(1).word();
      if (!/^opc\.tcp:\/\/[^/\s:]+(:\d{1,5})?(\/\S*)?$/.test(url)) v.fail(`expected an endpoint such as opc.tcp://plc1:4840, got "${url}"`);
      c.endpoint = url;
    },
  },
  {
    key: 'opcua_security_policy',
    usage: SECURITY_POLICIES.join(' | '),
    doc: 'Security policy of the secure channel; anything but None needs opcua_security_mode Sign or SignAndEncrypt.',
    default: 'None',
    scope: 'beat',
    set(c, v) {
      c.securityPolicy = v.count(1).oneOf(SECURITY_POLICIES);
    },
  },
  {
    key: 'opcua_security_mode',
    usage: SECURITY_MODES.join(' | '),
    doc: 'Message security mode of the secure channel.',
    default: 'None',
    scope: 'beat',
    set(c, v) {
      c.securityMode = v.count(1).oneOf(SECURITY_MODES);
    },
  },
  {
    key: 'opcua_username',
    usage: '<name>',
    doc: 'User name identity (with opcua_password_file); without it the session is anonymous.',
    scope: 'beat',
    set(c, v) {
      c.username = v.count(1).word();
    },
  },
  {
    key: 'opcua_password_file',
    usage: '<path>',
    doc: 'File holding the password of opcua_username (one line). Read at each (re)connect.',
    scope: 'beat',
    set(c, v) {
      c.passwordFile = v.count(1).path();
    },
  },
  {
    key: 'opcua_monitor',
    usage: '<node id> | <browse path>',
    doc: 'A variable to watch: a node id (`ns=2;s=Device1.Temperature`, `i=2258`) or a browse path from the Root folder with MQTT-like wildcards (`Objects/Plant/+/Temperature`, `Objects/Plant/#`; `2:Plant` also matches the namespace index). Repeat for more.',
    scope: 'beat',
    repeatable: true,
    set(c, v) {
      const spec = parseMonitor(v.rest());
      if ('error' in spec) return v.fail(spec.error);
      c.monitors.push(spec);
    },
  },
  {
    key: 'opcua_pki_dir',
    usage: '<directory>',
    doc: "The beat's PKI folder: its own certificate and key (`own/`, generated on first start unless opcua_certificate_file is set), trusted server certificates (`trusted/certs/`), refused ones (`rejected/`).",
    default: '<persistence_location>/opcua-pki',
    scope: 'beat',
    set(c, v) {
      c.pkiDir = v.count(1).path();
    },
  },
  {
    key: 'opcua_certificate_file',
    usage: '<path>',
    doc: 'PEM client certificate (with opcua_private_key_file) instead of the one generated in the PKI folder.',
    scope: 'beat',
    set(c, v) {
      c.certificateFile = v.count(1).path();
    },
  },
  {
    key: 'opcua_private_key_file',
    usage: '<path>',
    doc: 'PEM private key of opcua_certificate_file.',
    scope: 'beat',
    set(c, v) {
      c.privateKeyFile = v.count(1).path();
    },
  },
  {
    key: 'opcua_server_certificate_file',
    usage: '<path>',
    doc: "A server certificate (PEM or DER) to trust; it is added to the PKI folder's trusted certificates at start. Repeat for more.",
    scope: 'beat',
    repeatable: true,
    set(c, v) {
      c.serverCertificateFiles.push(v.count(1).path());
    },
  },
  {
    key: 'opcua_trust_on_first_use',
    usage: 'on | off',
    doc: 'Trust the first server certificate seen when the PKI folder trusts none yet; later a different certificate is refused. Off: an unknown certificate is refused with an error naming the file to move into `trusted/certs/`.',
    default: 'off',
    scope: 'beat',
    set(c, v) {
      c.trustOnFirstUse = v.count(1).onOff();
    },
  },
  {
    key: 'opcua_sampling_interval',
    usage: '<duration>',
    doc: 'How often the server samples each monitored variable (`250ms`, `1s`; 0: as fast as the server can).',
    default: '1s',
    scope: 'beat',
    set(c, v) {
      c.samplingIntervalMs = v.count(1).durationMs();
    },
  },
  {
    key: 'opcua_publishing_interval',
    usage: '<duration>',
    doc: 'How often the server sends the collected changes of the subscription.',
    default: '1s',
    scope: 'beat',
    set(c, v) {
      c.publishingIntervalMs = v.count(1).durationMs(0, { min: '10ms' });
    },
  },
  {
    key: 'opcua_queue_size',
    usage: '<n>',
    doc: 'Changes the server keeps per variable between two publishes (the oldest is dropped first).',
    default: '100',
    scope: 'beat',
    set(c, v) {
      c.queueSize = v.count(1).int(0, 1, 100_000);
    },
  },
  {
    key: 'opcua_deadband',
    usage: 'none | absolute <value> | percent <0..100>',
    doc: 'Data-change deadband: report a numeric value only when it moved by more than this (percent of the EURange, which the variable must have).',
    default: 'none',
    scope: 'beat',
    set(c, v) {
      const kind = v.oneOf(['none', 'absolute', 'percent']);
      if (kind === 'none') {
        v.count(1);
        c.deadband = { kind };
      } else c.deadband = { kind, value: v.count(2).number(1, 0, kind === 'percent' ? 100 : Number.MAX_VALUE) };
    },
  },
  {
    key: 'opcua_data_change_trigger',
    usage: TRIGGERS.join(' | '),
    doc: 'What counts as a change: the status only, status or value, or also a new source timestamp.',
    default: 'status_value',
    scope: 'beat',
    set(c, v) {
      c.trigger = v.count(1).oneOf(TRIGGERS);
    },
  },
  {
    key: 'opcua_rebrowse_interval',
    usage: '<duration>',
    doc: 'Browse paths are resolved again this often (and at once when the server reports a model change); 0: only on model change events.',
    default: '5m',
    scope: 'beat',
    set(c, v) {
      c.rebrowseIntervalMs = v.count(1).durationMs();
    },
  },
  {
    key: 'opcua_max_monitored_items',
    usage: '<n>',
    doc: 'Upper bound of the variables the beat monitors; browse paths matching more are cut off with a warning.',
    default: '10000',
    scope: 'beat',
    set(c, v) {
      c.maxMonitoredItems = v.count(1).int(0, 1, 1_000_000);
    },
  },
];

/** Cross-key rules, checked at config load. */
export function checkOpcuaConfig(c: OpcuaConfig, block: BeatBlock): void {
  const fail = (key: string, detail: string): never => {
    throw new ConfigError(block.pos, key, detail);
  };
  if (!c.name) fail('opcua_name', "beat opcua needs opcua_name (the server's name in topics)");
  if (!c.endpoint) fail('opcua_endpoint', 'beat opcua needs opcua_endpoint opc.tcp://host:port');
  if (c.monitors.length === 0) fail('opcua_monitor', 'beat opcua needs at least one opcua_monitor <node id or browse path>');
  if ((c.securityPolicy === 'None') !== (c.securityMode === 'None'))
    fail(
      'opcua_security_mode',
      `security policy ${c.securityPolicy} needs security mode ${c.securityPolicy === 'None' ? 'None' : 'Sign or SignAndEncrypt'}, got ${c.securityMode}`,
    );
  if (!!c.username !== !!c.passwordFile)
    fail(c.username ? 'opcua_password_file' : 'opcua_username', 'opcua_username and opcua_password_file go together');
  if (!!c.certificateFile !== !!c.privateKeyFile)
    fail(
      c.certificateFile ? 'opcua_private_key_file' : 'opcua_certificate_file',
      'opcua_certificate_file and opcua_private_key_file go together',
    );
}
