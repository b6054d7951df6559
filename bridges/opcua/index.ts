import type { BeatDefinition } from '../contract.js';
import { checkOpcuaConfig, defaultOpcuaConfig, opcuaKeys, type OpcuaConfig } from './config.js';
import { OpcuaBridge } from './bridge.js';

export const opcuaBeat: BeatDefinition<OpcuaConfig> = {
  name: 'opcua',
  doc: 'A node-opcua client of one OPC-UA server: monitors the configured node ids and browse paths (MQTT-like wildcards, re-resolved when the address space changes) and publishes every value change on `beats/opcua/<opcua_name>/<browse path | node id>` with value, data type, status code and timestamps; reconnects after losing the server and reports the gap (docs/beats.md).',
  keys: opcuaKeys,
  defaults: defaultOpcuaConfig,
  check: checkOpcuaConfig,
  create: (cfg) => new OpcuaBridge(cfg),
};
