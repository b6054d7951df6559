import type { RuleDefinition } from '../detector.js';
import { bruteForce, credentialStuffing } from './auth.js';
import { clientFlapping, connectionStorm } from './connections.js';
import { aclDenials, topicScan, wildcardSubscription } from './recon.js';
import { payloadSize, publishRate, topicRate } from './rates.js';
import { newClientId, newSourceNetwork } from './first-seen.js';
import { threatIntel } from './intel.js';
import { intelProcess, newNetworkProcess } from './correlated.js';

/** Every detection rule, in the order docs/detection.md lists them. */
export const RULES: readonly RuleDefinition[] = [
  bruteForce,
  credentialStuffing,
  connectionStorm,
  clientFlapping,
  wildcardSubscription,
  topicScan,
  aclDenials,
  publishRate,
  topicRate,
  payloadSize,
  newSourceNetwork,
  newClientId,
  threatIntel,
  intelProcess,
  newNetworkProcess,
];

export const RULE_SPECS = RULES.map((r) => r.spec);
