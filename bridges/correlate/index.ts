import type { BeatDefinition } from '../contract.js';
import { correlateKeys, defaultCorrelateConfig, type CorrelateConfig } from './config.js';
import { CorrelateBridge } from './bridge.js';

export const correlateBeat: BeatDefinition<CorrelateConfig> = {
  name: 'correlate',
  doc: "Joins the Zeek beat's conn records (with their dns, ssl and http records) and the osquery and Fleet beats' socket rows (socket_events, process_open_sockets, listening_ports, recognised by their columns) on the 5-tuple: a flow a host's process made goes out on `beats/correlate/conn` with ECS `host.*`, `process.*`, `user.*` and `network.direction`; a flow of a known host that no process explains within the window on `beats/correlate/unattributed`; answers of on-demand host queries on `beats/correlate/query/<host>` (docs/correlation.md). Works with no keys.",
  keys: correlateKeys,
  defaults: defaultCorrelateConfig,
  create: (cfg) => new CorrelateBridge(cfg),
};
