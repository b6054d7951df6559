import type { BeatDefinition } from '../contract.js';
import { checkThingsConfig, defaultThingsConfig, thingsKeys, type ThingsConfig } from './config.js';
import { ThingsBridge } from './bridge.js';

export const thingsBeat: BeatDefinition<ThingsConfig> = {
  name: 'things',
  doc: "Connects to ThingsBoard's MQTT transport as a gateway (`v1/gateway/...`) or a device (`v1/devices/me/...`) and publishes attribute updates, telemetry, RPC requests and gateway device events on `beats/things/<device>/<attributes|telemetry|rpc|connect|disconnect|claim>`; MQTT clients of mqprobe reply to RPC requests and ask for attributes on `beats/things/rpc/<device>/...` (docs/beats.md).",
  keys: thingsKeys,
  defaults: defaultThingsConfig,
  check: checkThingsConfig,
  create: (cfg, common) => new ThingsBridge(cfg, common),
};
