import type { BeatBlock } from '../broker/config/types.js';
import type { KeySpec } from '../broker/config/spec.js';
import type { DocSection } from '../broker/config/docs.js';
import type { BeatDefinition, BridgeHost } from './contract.js';
import { commonBeatKeys, parseBeatBlock, type ParsedBeat } from './frame/config.js';
import { BeatRunner } from './frame/runner.js';
import { BeatHttp } from './frame/http.js';
import { RecordBus } from './frame/record-bus.js';
import { SseHub } from '../broker/http/sse-hub.js';
import { defaultSseConfig } from '../broker/http/sse-config.js';
import { zeekBeat } from './zeek/index.js';
import { fleetBeat } from './fleet/index.js';
import { thingsBeat } from './things/index.js';
import { opcuaBeat } from './opcua/index.js';
import { openCtiBeat } from './opencti/index.js';
import { fiwareBeat } from './fiware/index.js';
import { osqueryBeat } from './osquery/index.js';
import { correlateBeat } from './correlate/index.js';

export type { BridgeHost } from './contract.js';

/** Every beat mqprobe knows. A new beat adds one import and one entry here. */
// each beat has its own config type; the registry only passes each definition's config back to it
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const beatDefinitions: BeatDefinition<any>[] = [
  zeekBeat,
  fleetBeat,
  thingsBeat,
  opcuaBeat,
  openCtiBeat,
  fiwareBeat,
  osqueryBeat,
  correlateBeat,
];

function definitions(): Map<string, BeatDefinition<unknown>> {
  const map = new Map<string, BeatDefinition<unknown>>();
  for (const d of beatDefinitions) {
    if (map.has(d.name)) throw new Error(`two beats are called ${d.name}`);
    map.set(d.name, d);
  }
  return map;
}

/**
 * Checks every `beat <name>` block at config load: known beat, known keys (the beat's own and the
 * common `beat_*`), valid values, the beat's cross-key rules. Throws ConfigError naming file:line:key.
 */
export function validateBeats(blocks: BeatBlock[]): void {
  const defs = definitions();
  for (const b of blocks) parseBeatBlock(defs, b);
}

/** The configured beats, attached to a broker: start() runs them, stop() ends them. */
export interface BeatSet {
  /** Starts every beat; resolves when each started, failed (it is then retried in the background) or took 5 s. */
  start(): Promise<void>;
  /** Stops every beat (each finishes and checkpoints what it has in hand) and ends SSE streams. */
  stop(): Promise<void>;
  /** The SSE hub, when the broker has an HTTP listener. */
  readonly sse?: SseHub;
}

/**
 * Wires the frame into a broker before its HTTP listener listens (Fastify takes no routes after
 * that): `GET /sse` and the `/beats/<name>/…` mount point go on `host.http` when there is one, and
 * SSE starts following broker messages. Call it even without beat blocks, so /sse exists.
 */
export function attachBeats(host: BridgeHost, blocks: BeatBlock[]): BeatSet {
  const defs = definitions();
  const parsed: ParsedBeat[] = blocks.map((b) => parseBeatBlock(defs, b));
  let sse: SseHub | undefined;
  let http: BeatHttp | undefined;
  if (host.http) {
    if (!host.httpAuth) throw new Error('attachBeats: an HTTP listener needs its HttpAuth (/sse serves broker identities only)');
    sse = new SseHub(host.sse ?? defaultSseConfig(), host.log.child({ name: 'sse' }), host.metrics, host.httpAuth);
    sse.route(host.http);
    sse.attach(host.broker);
    http = new BeatHttp(host.http, host.httpAuth);
  }
  const bus = new RecordBus();
  const runners = parsed.map((p) => new BeatRunner({ host, hub: sse, http, bus }, p));
  let stopped: Promise<void> | undefined;
  return {
    sse,
    async start() {
      await Promise.all(runners.map((r) => r.start()));
    },
    stop() {
      stopped ??= (async () => {
        await Promise.all(runners.map((r) => r.stop()));
        await sse?.close();
      })();
      return stopped;
    },
  };
}

/** attachBeats + start, for a host whose HTTP listener (if any) does not listen yet. */
export async function startBeats(host: BridgeHost, blocks: BeatBlock[]): Promise<{ stop(): Promise<void> }> {
  const set = attachBeats(host, blocks);
  await set.start();
  return set;
}

/** Sections for docs/configuration.md: the common beat keys, then each beat's keys. */
export function beatDocSections(): DocSection[] {
  return [
    {
      title: 'Beats (common keys)',
      intro:
        '`beat <name>` opens a beat block; the keys after it, up to the next `beat` line, configure that beat (docs/beats.md). Every block accepts these:',
      specs: commonBeatKeys as KeySpec<never>[],
    },
    ...beatDefinitions.map((d) => ({ title: `Beat ${d.name}`, intro: d.doc, specs: d.keys as KeySpec<never>[] })),
  ];
}
