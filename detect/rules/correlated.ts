/**
 * Rules over the correlator's records (`beats/correlate/conn`, docs/correlation.md): a Zeek flow
 * with the host, process and user that made it.
 */
import type { Observation } from '../observation.js';
import { maxTrackedParam, type Params } from '../params.js';
import type { DetectorEnv, Emit, RuleDefinition } from '../detector.js';
import { describeMatch } from '../indicators.js';
import { decodePayload, indicatorFields, parseRecord } from './intel.js';
import { trackedMap } from '../windows.js';

type Rec = Record<string, unknown>;

const TOPICS_PARAM = {
  name: 'topics',
  kind: 'list' as const,
  default: 'beats/correlate/conn',
  doc: 'Topics of correlated flows (raw JSON, `beat_format raw`).',
};

const obj = (v: unknown): Rec => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Rec) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v.slice(0, 512) : undefined);

/** What a correlated flow says about itself, or undefined when the publish is not one. */
interface CorrelatedFlow {
  host: string;
  hostIp?: string;
  peer?: string;
  direction: string;
  process: Rec;
  user?: string;
  uid?: string;
  processKey: string;
}

function correlatedFlow(o: Observation, topics: readonly string[]): CorrelatedFlow | undefined {
  if (o.topic === undefined || !topics.includes(o.topic)) return undefined;
  const text = decodePayload(o);
  const rec = text === undefined ? undefined : parseRecord(text);
  if (!rec) return undefined;
  const host = str(obj(rec.host).name);
  const process = obj(rec.process);
  const processKey = str(process.executable) ?? str(process.name);
  if (host === undefined || processKey === undefined) return undefined;
  const direction = str(obj(rec.network).direction) ?? 'outbound';
  const src = str(obj(rec.source).ip);
  const dst = str(obj(rec.destination).ip);
  const [hostIp, peer] = direction === 'inbound' ? [dst, src] : [src, dst];
  return { host, hostIp, peer, direction, process, user: str(obj(rec.user).name) ?? str(obj(rec.user).id), uid: str(rec.uid), processKey };
}

/** `nginx (pid 812, /usr/sbin/nginx) on web-1` */
function describe(f: CorrelatedFlow): string {
  const p = f.process;
  const name = str(p.name) ?? f.processKey;
  const exe = str(p.executable);
  return `${name} (pid ${String(p.pid)}${exe && exe !== name ? `, ${exe}` : ''}${f.user ? `, user ${f.user}` : ''}) on ${f.host}`;
}

export const intelProcess: RuleDefinition = {
  spec: {
    name: 'threat-intel-process',
    description:
      'A correlated flow between a known host and an address in the OpenCTI indicator set: names the host, process and user that made it.',
    entity: 'host.name + process (with the indicator)',
    risk: 'high',
    minimum: 'one correlated flow whose peer address the indicator set matches',
    params: [TOPICS_PARAM],
  },
  create(p: Params, emit: Emit, env: DetectorEnv) {
    const topics = p.list('topics');
    return {
      actions: ['publish-received'],
      observe(o) {
        const set = env.indicators();
        if (!set) return;
        const f = correlatedFlow(o, topics);
        if (!f?.peer) return;
        let info;
        try {
          info = describeMatch(set.matchIp(f.peer));
        } catch {
          return; // a broken lookup must not stop detection
        }
        if (!info) return;
        const toward = f.direction === 'inbound' ? 'from' : 'to';
        emit({
          key: `${f.host} ${f.processKey} ip ${f.peer}`,
          time: o.time,
          message: `${describe(f)} had a flow ${toward} ${f.peer}, an OpenCTI indicator${info.name ? ` (${info.name})` : ''}`,
          entities: { ip: f.hostIp, destinationIp: f.peer, user: f.user, topic: o.topic },
          indicator: indicatorFields({ kind: 'ip', value: f.peer, field: 'peer' }, info as Record<string, unknown>),
          evidence: { host: f.host, process: f.process, direction: f.direction, uid: f.uid, sequences: o.seq >= 0 ? [o.seq] : [] },
        });
      },
    };
  },
};

export const newNetworkProcess: RuleDefinition = {
  spec: {
    name: 'new-network-process',
    description: 'A process (by executable, else name) seen on the network for the first time on a host: informational.',
    entity: 'host.name + process.executable',
    risk: 'low',
    minimum: 'one correlated flow of a process the host has not shown on the network since the learning period began',
    params: [
      TOPICS_PARAM,
      {
        name: 'learn',
        kind: 'duration',
        default: '1h',
        doc: 'Learning period (event time) per host from its first correlated flow: processes seen during it are remembered without alerts.',
      },
      maxTrackedParam('Host and process pairs remembered', '200000'),
    ],
  },
  create(p: Params, emit: Emit) {
    const topics = p.list('topics');
    const learn = p.num('learn');
    const known = trackedMap<true>(p.num('max_tracked'));
    const hostsSince = trackedMap<number>(p.num('max_tracked'));
    return {
      actions: ['publish-received'],
      observe(o) {
        const f = correlatedFlow(o, topics);
        if (!f) return;
        let since = hostsSince.get(f.host);
        if (since === undefined) hostsSince.set(f.host, (since = o.time));
        const key = `${f.host}\u0000${f.processKey}`;
        if (known.has(key)) return;
        known.set(key, true);
        if (o.time - since < learn) return;
        emit({
          key: `${f.host} ${f.processKey}`,
          time: o.time,
          message: `${describe(f)} talked to the network for the first time (${f.direction}${f.peer ? `, peer ${f.peer}` : ''})`,
          entities: { ip: f.hostIp, destinationIp: f.peer, user: f.user, topic: o.topic },
          evidence: { host: f.host, process: f.process, direction: f.direction, uid: f.uid, sequences: o.seq >= 0 ? [o.seq] : [] },
        });
      },
    };
  },
};
