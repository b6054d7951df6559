import { ConfigError } from '../../broker/config/errors.js';
import { ValueReader, specIndex, type KeySpec } from '../../broker/config/spec.js';
import type { BeatBlock } from '../../broker/config/types.js';
import { isValidTopic } from '../../broker/auth/topic-filter.js';
import type { BeatDefinition, CommonBeatConfig } from '../contract.js';

/** A beat block checked against its definition: what the frame starts. */
export interface ParsedBeat<C = unknown> {
  def: BeatDefinition<C>;
  cfg: C;
  common: Required<CommonBeatConfig>;
  block: BeatBlock;
}

export function defaultCommon(name: string): Required<CommonBeatConfig> {
  return { topicPrefix: `beats/${name}`, format: 'raw', output: 'both', qos: 0 };
}

/** The `beat_*` keys every beat block accepts. */
export const commonBeatKeys: KeySpec<CommonBeatConfig>[] = [
  {
    key: 'beat_topic_prefix',
    usage: '<topic>',
    doc: 'Topic under which the beat publishes its records (`<prefix>/<subtopic>`); no wildcards, not starting with `$`.',
    default: 'beats/<name>',
    scope: 'beat',
    set(c, v) {
      v.count(1);
      const t = v.word().replace(/\/+$/, '');
      if (t === '' || !isValidTopic(t) || t.startsWith('$'))
        v.fail(`expected a topic without wildcards that does not start with $, got "${v.word()}"`);
      c.topicPrefix = t;
    },
  },
  {
    key: 'beat_format',
    usage: 'raw | ngsi | ngsi-ld',
    doc: '`raw`: the source record as typed JSON; `ngsi`: an NGSI v2 normalized entity; `ngsi-ld`: an NGSI-LD entity (docs/beats.md).',
    default: 'raw',
    scope: 'beat',
    set(c, v) {
      c.format = v.count(1).oneOf(['raw', 'ngsi', 'ngsi-ld']);
    },
  },
  {
    key: 'beat_output',
    usage: 'mqtt | sse | both',
    doc: 'Where records go: published into the broker (`mqtt`; SSE clients then see them too unless this says `mqtt`), only to SSE clients of `/sse` (`sse`), or both.',
    default: 'both',
    scope: 'beat',
    set(c, v) {
      c.output = v.count(1).oneOf(['mqtt', 'sse', 'both']);
    },
  },
  {
    key: 'beat_qos',
    usage: '0 | 1 | 2',
    doc: "QoS of the beat's publishes. Use 1 or 2 when persistent-session subscribers must get records published while they are offline.",
    default: '0',
    scope: 'beat',
    set(c, v) {
      c.qos = v.count(1).int(0, 0, 2) as 0 | 1 | 2;
    },
  },
];

const commonSpecs = specIndex(commonBeatKeys);

/**
 * Checks one `beat <name>` block: the name must be a known beat, every key one of the beat's
 * `<name>_*` keys or a common `beat_*` key, every value valid; then the beat's own cross-key check.
 * Errors name file, line and key.
 */
export function parseBeatBlock(defs: ReadonlyMap<string, BeatDefinition<unknown>>, block: BeatBlock): ParsedBeat {
  const def = defs.get(block.name);
  if (!def) {
    throw new ConfigError(block.pos, 'beat', `unknown beat "${block.name}" (known: ${[...defs.keys()].sort().join(', ') || 'none'})`);
  }
  const cfg = def.defaults();
  const common = defaultCommon(block.name);
  const own = specIndex(def.keys);
  for (const line of block.lines) {
    const v = new ValueReader(line);
    const commonSpec = commonSpecs.get(line.key);
    if (commonSpec) {
      commonSpec.set(common, v);
      continue;
    }
    const spec = own.get(line.key);
    if (!spec) throw new ConfigError(line, line.key, `unknown key for beat ${block.name} (see docs/configuration.md)`);
    spec.set(cfg, v);
  }
  def.check?.(cfg, block);
  return { def, cfg, common, block };
}
