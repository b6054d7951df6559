import { ConfigError } from '../../broker/config/errors.js';
import type { KeySpec } from '../../broker/config/spec.js';
import type { BeatBlock } from '../../broker/config/types.js';

export type ThingsMode = 'gateway' | 'device';

export interface ThingsConfig {
  url?: URL;
  tokenFile?: string;
  username?: string;
  passwordFile?: string;
  mode: ThingsMode;
  /** Device mode: the device's name in topics and entity ids (the token does not tell it). */
  device?: string;
  clientId?: string;
  cafile?: string;
  certfile?: string;
  keyfile?: string;
  qos: 0 | 1;
}

export function defaultThingsConfig(): ThingsConfig {
  return { mode: 'gateway', qos: 1 };
}

export const thingsKeys: KeySpec<ThingsConfig>[] = [
  {
    key: 'things_url',
    usage: 'mqtt://host:1883 | mqtts://host:8883',
    doc: "ThingsBoard's MQTT transport (or any MQTT broker carrying the ThingsBoard gateway or device API).",
    scope: 'beat',
    set(c, v) {
      v.count(1);
      let u: URL;
      try {
        u = new URL(v.word());
      } catch {
        return v.fail(`expected a URL such as mqtt://thingsboard:1883, got "${v.word()}"`);
      }
      if (u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:') v.fail(`expected an mqtt:// or mqtts:// URL, got "${u.protocol}"`);
      if (u.username || u.password)
        v.fail('credentials do not belong in the URL: use things_token_file or things_username + things_password_file');
      c.url = u;
    },
  },
  {
    key: 'things_token_file',
    usage: '<path>',
    doc: 'File holding the device or gateway access token, sent as the MQTT user name (ThingsBoard access-token authentication). Read at each (re)connect.',
    scope: 'beat',
    set(c, v) {
      c.tokenFile = v.count(1).path();
    },
  },
  {
    key: 'things_username',
    usage: '<name>',
    doc: 'MQTT user name for ThingsBoard basic MQTT credentials (with things_password_file); instead of things_token_file.',
    scope: 'beat',
    set(c, v) {
      c.username = v.count(1).word();
    },
  },
  {
    key: 'things_password_file',
    usage: '<path>',
    doc: 'File holding the password for things_username. Read at each (re)connect.',
    scope: 'beat',
    set(c, v) {
      c.passwordFile = v.count(1).path();
    },
  },
  {
    key: 'things_mode',
    usage: 'gateway | device',
    doc: '`gateway`: speak the gateway API (`v1/gateway/...`) for many devices; `device`: speak the device API (`v1/devices/me/...`) as the one device of things_device.',
    default: 'gateway',
    scope: 'beat',
    set(c, v) {
      c.mode = v.count(1).oneOf(['gateway', 'device']);
    },
  },
  {
    key: 'things_device',
    usage: '<name>',
    doc: 'Device mode: the name of the device the token belongs to, used in topics (`beats/things/<name>/...`) and entity ids. Required with `things_mode device`.',
    scope: 'beat',
    set(c, v) {
      c.device = v.rest();
    },
  },
  {
    key: 'things_client_id',
    usage: '<client id>',
    doc: 'MQTT client id towards ThingsBoard.',
    default: 'mqprobe-things-<random>',
    scope: 'beat',
    set(c, v) {
      c.clientId = v.count(1).word();
    },
  },
  {
    key: 'things_cafile',
    usage: '<path>',
    doc: 'PEM CA certificates to verify an mqtts:// server (default: the system trust store).',
    scope: 'beat',
    set(c, v) {
      c.cafile = v.count(1).path();
    },
  },
  {
    key: 'things_certfile',
    usage: '<path>',
    doc: 'PEM client certificate for mqtts:// (ThingsBoard X.509 device authentication), with things_keyfile.',
    scope: 'beat',
    set(c, v) {
      c.certfile = v.count(1).path();
    },
  },
  {
    key: 'things_keyfile',
    usage: '<path>',
    doc: 'PEM private key of things_certfile.',
    scope: 'beat',
    set(c, v) {
      c.keyfile = v.count(1).path();
    },
  },
  {
    key: 'things_qos',
    usage: '0 | 1',
    doc: 'QoS of the subscriptions to ThingsBoard and of the replies sent to it.',
    default: '1',
    scope: 'beat',
    set(c, v) {
      c.qos = v.count(1).int(0, 0, 1) as 0 | 1;
    },
  },
];

/** Cross-key rules, checked at config load. */
export function checkThingsConfig(c: ThingsConfig, block: BeatBlock): void {
  const fail = (key: string, detail: string): never => {
    throw new ConfigError(block.pos, key, detail);
  };
  if (!c.url) fail('things_url', 'beat things needs things_url (mqtt://host:1883 or mqtts://host:8883)');
  if (c.tokenFile && (c.username || c.passwordFile))
    fail('things_token_file', 'give either things_token_file or things_username + things_password_file, not both');
  if (c.passwordFile && !c.username) fail('things_password_file', 'things_password_file needs things_username');
  if (!c.tokenFile && !c.username && !c.certfile)
    fail(
      'things_token_file',
      'beat things needs credentials: things_token_file, things_username (+ things_password_file), or things_certfile + things_keyfile',
    );
  if (!!c.certfile !== !!c.keyfile)
    fail(c.certfile ? 'things_keyfile' : 'things_certfile', 'things_certfile and things_keyfile go together');
  if (c.certfile && c.url?.protocol !== 'mqtts:') fail('things_certfile', 'a client certificate needs an mqtts:// things_url');
  if (c.mode === 'device' && !c.device)
    fail('things_device', 'things_mode device needs things_device <name> (the device the token belongs to)');
  if (c.mode === 'gateway' && c.device)
    fail('things_device', 'things_device is for things_mode device; a gateway names its devices in each message');
}
