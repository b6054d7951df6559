import type { BeatDefinition } from '../contract.js';
import { checkFiwareConfig, defaultFiwareConfig, fiwareKeys, type FiwareConfig } from './config.js';
import { FiwareBridge } from './bridge.js';

export const fiwareBeat: BeatDefinition<FiwareConfig> = {
  name: 'fiware',
  doc: "Subscribes to entity types in a FIWARE context broker (Orion NGSI v2, or Orion-LD / NGSI-LD), receives its notifications on `POST /beats/fiware/notify` of mqprobe's HTTP listener, and publishes each notified entity on `beats/fiware/<service>/<entity type>/<entity id>`; deletes its subscriptions when it stops and re-creates those the broker forgets (docs/beats.md).",
  keys: fiwareKeys,
  defaults: defaultFiwareConfig,
  check: checkFiwareConfig,
  create: (cfg) => new FiwareBridge(cfg),
};
