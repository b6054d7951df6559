import { loadConfig as loadBrokerConfig, brokerKeyTable, type ConfigExtension, type LoadOptions } from '../broker/config/load.js';
import { renderConfigReference, type DocSection } from '../broker/config/docs.js';
import type { KeySpec } from '../broker/config/spec.js';
import type { BrokerConfig } from '../broker/config/types.js';
import { captureKeys, defaultCaptureConfig, validateCapture, type CaptureConfig } from '../capture/config.js';
import { sinkKey } from '../capture/sinks/index.js';
import { detectKeys, defaultDetectConfig, type DetectConfig } from '../detect/config.js';
import { beatDefinitions, validateBeats } from '../bridges/index.js';
import { kafkaBridgeKeys, validateKafkaBridges, type KafkaBridgeConfig } from '../bridges/kafka/index.js';

/** The areas' config built on the broker's: what `mqprobe -c FILE` loads. */
export interface AreasConfig {
  capture: CaptureConfig;
  detect: DetectConfig;
  /** `kafka_bridge` blocks (bridges/kafka/). */
  kafkaBridges: KafkaBridgeConfig[];
}
export type AppConfig = BrokerConfig & AreasConfig;

/** The table of every area's keys outside beat blocks, in docs order (the broker's own come first). */
const areaKeys: ConfigExtension<AreasConfig>['keys'] = [
  { area: 'Capture', specs: [sinkKey, ...captureKeys] as KeySpec<never>[], target: (c) => c.capture },
  { area: 'Detection', specs: detectKeys as KeySpec<never>[], target: (c) => c.detect },
  {
    area: 'Kafka bridges (`kafka_bridge` blocks, docs/kafka.md)',
    specs: kafkaBridgeKeys as KeySpec<never>[],
    target: (c) => c.kafkaBridges,
  },
];

const extension: ConfigExtension<AreasConfig> = {
  defaults: () => ({ capture: defaultCaptureConfig(), detect: defaultDetectConfig(), kafkaBridges: [] }),
  keys: areaKeys,
  validateBlocks: validateBeats,
  blockKeyPrefixes: beatDefinitions.map((d) => `${d.name}_`),
  validate: (c) => {
    validateCapture(c.capture);
    validateKafkaBridges(c.kafkaBridges);
  },
};

/** Loads the config file with every area's keys; errors name file, line and key. */
export function loadConfig(file: string | undefined, opts: LoadOptions = {}): AppConfig {
  return loadBrokerConfig(file, opts, extension);
}

/** docs/configuration.md: the broker's and the areas' key tables, then `extra` (the beats' sections). */
export function renderConfigDocs(extra: DocSection[] = []): string {
  return renderConfigReference([...[...brokerKeyTable, ...areaKeys].map((a) => ({ title: a.area, specs: a.specs })), ...extra]);
}
