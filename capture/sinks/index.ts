import type { KeySpec } from '../../broker/config/spec.js';
import type { CaptureConfig, SinkConfig } from '../config.js';
import type { Sink } from '../runner.js';
import type { SinkDefinition, SinkEnv } from './definition.js';
import { searchSinkDefinition } from './elasticsearch.js';
import { fileSinkDefinition } from './file.js';
import { kafkaSinkDefinition } from './kafka.js';
import { logstashSinkDefinition } from './logstash.js';
import { beatsSinkDefinition } from './beats.js';
import { mqttSinkDefinition } from './mqtt.js';
import { stdoutSinkDefinition } from './stdout.js';

export type { SinkEnv } from './definition.js';

/** Every capture sink mqprobe knows. A new sink is one file exporting a SinkDefinition and one line here. */
export const sinkDefinitions: SinkDefinition[] = [
  stdoutSinkDefinition,
  fileSinkDefinition,
  logstashSinkDefinition,
  beatsSinkDefinition,
  mqttSinkDefinition,
  searchSinkDefinition,
  kafkaSinkDefinition,
];

const byKind = new Map(sinkDefinitions.flatMap((d) => d.kinds.map((k) => [k, d] as const)));

function definitionOf(c: SinkConfig): SinkDefinition {
  const d = byKind.get(c.kind);
  if (!d) throw new Error(`no capture sink is called ${c.kind}`);
  return d;
}

/** `capture_sink`: its usage and parsing come from the registry. */
export const sinkKey: KeySpec<CaptureConfig> = {
  key: 'capture_sink',
  usage: sinkDefinitions.map((d) => d.usage).join(' | '),
  doc: 'Where capture events go. Repeat the key to send to several sinks at once. Without any capture_sink, nothing is captured.',
  scope: 'global',
  repeatable: true,
  set(c, v) {
    const kind = v.oneOf([...byKind.keys()]);
    c.sinks.push(byKind.get(kind)!.parse(v, kind));
  },
};

/** Whether the sink's serialisation and I/O run in the capture thread (capture/offload/) rather than the broker's. */
export const offloaded = (c: SinkConfig): boolean => !definitionOf(c).brokerThread;

/** Topics capture sinks publish their events on: capture records nothing published there. */
export const sinkTopics = (sinks: readonly SinkConfig[]): string[] => sinks.flatMap((c) => definitionOf(c).ownTopic?.(c) ?? []);

/** The sink of one `capture_sink` line, named `name` (sinkNames), and whether it spools (network sinks do, when capture_spool_dir is set). */
export function createSink(c: SinkConfig, env: SinkEnv, name: string): { sink: Sink; spools: boolean } {
  const { io, spools } = definitionOf(c).create(c, env);
  return { sink: { ...io, name }, spools };
}

/** The name of each sink as metrics, logs and the spool folder know it; a repeated sink gets `#2`, `#3`… */
export function sinkNames(sinks: readonly SinkConfig[]): string[] {
  const seen = new Set<string>();
  return sinks.map((sc) => {
    const base = definitionOf(sc).name(sc);
    let name = base;
    for (let i = 2; seen.has(name); i++) name = `${base}#${i}`;
    seen.add(name);
    return name;
  });
}

/** A sink name as a folder name (spool) that stays the same from one run to the next. */
export function folderName(sinkName: string): string {
  return sinkName.replace(/[^A-Za-z0-9._-]+/g, '_');
}
