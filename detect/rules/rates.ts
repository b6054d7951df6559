import type { Observation } from '../observation.js';
import { maxTrackedParam, type ParamSpec, type Params } from '../params.js';
import { humanWindow, isInternal, type DetectorEnv, type Emit, type Entities, type RuleDefinition } from '../detector.js';
import { RateBaseline, SizeBaseline, stateOf, trackedMap, type BaselineParams } from '../windows.js';

// created once: the per-publish lookups allocate no closure
const newRate = () => new RateBaseline();
const newSize = () => new SizeBaseline();

/** How far above the deviation a completed bucket may be learned (see RateBaseline). */
const CLIP = 3;

function rateParams(entities: string): ParamSpec[] {
  return [
    {
      name: 'bucket',
      kind: 'duration',
      default: '10s',
      doc: 'Length of the counting bucket; the rate is a sliding count over one bucket length.',
    },
    {
      name: 'min_count',
      kind: 'count',
      default: '50',
      doc: 'A sliding count below this never alerts, whatever the baseline: the floor for quiet devices. Keep it above the bursts your event-driven devices send (an alarm of 40 messages within 10 s).',
    },
    { name: 'factor', kind: 'number', default: '5', doc: 'The count must exceed this multiple of the learned mean …', min: 1 },
    { name: 'sigma', kind: 'number', default: '6', doc: '… and the mean plus this many learned mean absolute deviations.', min: 0 },
    { name: 'warmup', kind: 'count', default: '30', doc: 'Buckets learned before the baseline is trusted (30 × 10 s = 5 min).' },
    {
      name: 'alpha',
      kind: 'number',
      default: '0.02',
      doc: 'EWMA weight of each completed bucket (0.02 ≈ the last 50 buckets).',
      min: 0.0001,
      max: 1,
    },
    {
      name: 'max_unlearned',
      kind: 'count',
      default: '200',
      doc: 'Threshold while the baseline warms up, and during connect_grace: catches floods from new clients.',
    },
    {
      name: 'connect_grace',
      kind: 'duration',
      default: '30s',
      doc: 'After a client (re)connects only max_unlearned applies, so store-and-forward devices may flush what they buffered offline.',
      min: 0,
    },
    maxTrackedParam(entities),
  ];
}

interface RateRuleShape {
  name: string;
  description: string;
  entity: string;
  minimum: string;
  tracked: string;
  /** The entity a publish is counted for, or undefined to skip it. */
  keyOf(o: Observation): string | undefined;
  label(key: string): string;
  entities(o: Observation, key: string): Entities;
}

/** A publish-rate rule: one RateBaseline per entity (client id or topic). */
function rateRule(shape: RateRuleShape): RuleDefinition {
  return {
    spec: {
      name: shape.name,
      description: shape.description,
      entity: shape.entity,
      risk: 'medium',
      minimum: shape.minimum,
      params: rateParams(shape.tracked),
    },
    create(p: Params, emit: Emit, env: DetectorEnv) {
      const bp: BaselineParams = { bucket: p.num('bucket'), alpha: p.num('alpha'), warmup: p.num('warmup'), clip: CLIP };
      const minCount = p.num('min_count');
      const factor = p.num('factor');
      const sigma = p.num('sigma');
      const maxUnlearned = p.num('max_unlearned');
      const grace = p.num('connect_grace');
      const rates = trackedMap<RateBaseline>(p.num('max_tracked'));
      return {
        actions: ['publish-received'],
        observe(o) {
          if (isInternal(o.clientId)) return;
          const key = shape.keyOf(o);
          if (key === undefined) return;
          const r = stateOf(rates, key, newRate);
          const count = r.add(o.time, o.seq, bp);
          if (count < minCount || r.alerted === r.start) return;
          const learned = r.n >= bp.warmup;
          const connected = o.clientId === undefined ? undefined : env.connectedAt(o.clientId);
          const inGrace = connected !== undefined && o.time - connected < grace;
          const threshold =
            learned && !inGrace ? Math.max(minCount, factor * r.mean, r.mean + sigma * r.dev) : Math.max(minCount, maxUnlearned);
          if (count < threshold) return;
          r.alerted = r.start;
          const rounded = Math.round(count);
          emit({
            key: shape.label(key),
            time: o.time,
            message: `${shape.label(key)} published ${rounded} messages within ${humanWindow(bp.bucket)}, ${learned ? `usually ${r.mean.toFixed(1)}` : 'no baseline yet'} (threshold ${Math.ceil(threshold)})`,
            entities: shape.entities(o, key),
            evidence: {
              count: rounded,
              threshold: Math.ceil(threshold),
              window_s: bp.bucket / 1000,
              baseline: learned ? { mean: round2(r.mean), mad: round2(r.dev), buckets: r.n } : null,
              connect_grace: inGrace,
              sequences: [r.firstSeq, o.seq].filter((s) => s >= 0),
            },
          });
        },
      };
    },
  };
}

const round2 = (x: number) => Math.round(x * 100) / 100;

export const publishRate = rateRule({
  name: 'publish-rate',
  description:
    'A client publishing far above its own learned rate (or, before it has one, above an absolute ceiling): a flood, a runaway device or a compromised one.',
  entity: 'mqtt.client_id',
  minimum:
    'a sliding count of max(min_count, factor × baseline, baseline + sigma × MAD) publishes per 10 s; for a device that usually sends under 10 per 10 s that is min_count: 50 per 10 s (10/s reach it in 5 s)',
  tracked: 'Client ids',
  keyOf: (o) => o.clientId,
  label: (key) => `client ${key}`,
  entities: (o) => ({ clientId: o.clientId, ip: o.ip, user: o.user }),
});

export const topicRate = rateRule({
  name: 'topic-rate',
  description:
    'A topic receiving far above its learned rate, also when the publishes come from many clients each below their own threshold.',
  entity: 'mqtt.topic',
  minimum: 'as publish-rate, counted per topic over all its publishers',
  tracked: 'Topics',
  keyOf: (o) => o.topic,
  label: (key) => `topic ${key}`,
  entities: (o, key) => ({ topic: key, clientId: o.clientId }),
});

export const payloadSize: RuleDefinition = {
  spec: {
    name: 'payload-size',
    description:
      'A payload far larger than the topic usually carries: exfiltration, a malformed or malicious message, or a device gone wrong.',
    entity: 'mqtt.topic',
    risk: 'medium',
    minimum:
      'one payload of at least min_bytes and factor × the topic’s usual size (1 KiB and 8× by default) on a topic with 20 learned payloads',
    params: [
      { name: 'factor', kind: 'number', default: '8', doc: 'The payload must be at least this multiple of the usual size …', min: 1 },
      { name: 'sigma', kind: 'number', default: '6', doc: '… and this many learned deviations above it (on a log2 scale).', min: 0 },
      { name: 'min_bytes', kind: 'bytes', default: '1024', doc: 'Payloads smaller than this never alert.' },
      { name: 'warmup', kind: 'count', default: '20', doc: 'Payloads learned per topic before it alerts.' },
      {
        name: 'alpha',
        kind: 'number',
        default: '0.05',
        doc: 'EWMA weight of each payload; sizes drift to a new normal (firmware update) within about 1/alpha messages.',
        min: 0.0001,
        max: 1,
      },
      maxTrackedParam('Topics'),
    ],
  },
  create(p: Params, emit: Emit) {
    const logFactor = Math.log2(p.num('factor'));
    const sigma = p.num('sigma');
    const minBytes = p.num('min_bytes');
    const warmup = p.num('warmup');
    const alpha = p.num('alpha');
    const topics = trackedMap<SizeBaseline>(p.num('max_tracked'));
    return {
      actions: ['publish-received'],
      observe(o) {
        if (o.topic === undefined || o.payloadSize === undefined || isInternal(o.clientId)) return;
        const b = stateOf(topics, o.topic, newSize);
        const x = Math.log2(o.payloadSize + 1);
        const above = x - b.mean;
        if (b.n >= warmup && o.payloadSize >= minBytes && above >= logFactor && above >= sigma * b.dev) {
          const usual = Math.round(2 ** b.mean - 1);
          emit({
            key: `topic ${o.topic}`,
            time: o.time,
            message: `payload of ${o.payloadSize} bytes on ${o.topic}, which usually carries about ${usual} bytes`,
            entities: { topic: o.topic, clientId: o.clientId, ip: o.ip, user: o.user },
            evidence: {
              payload_size: o.payloadSize,
              usual_size: usual,
              ratio: round2((o.payloadSize + 1) / 2 ** b.mean),
              baseline: { log2_mean: round2(b.mean), log2_mad: round2(b.dev), payloads: b.n },
              sequences: o.seq >= 0 ? [o.seq] : [],
            },
          });
        }
        b.learn(x, alpha, warmup);
      },
    };
  },
};
