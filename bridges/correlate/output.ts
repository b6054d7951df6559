import type { BeatRecord } from '../contract.js';
import { familyOf } from './address.js';
import type { Attribution, HostInfo, Unattributed } from './correlator.js';
import type { AppRecord, Flow, ProcessInfo } from './inputs.js';

type Rec = Record<string, unknown>;

/** ECS `host.*`: the host identifier osquery reports, its UUID when known, the addresses it is known by. */
export function hostFields(h: HostInfo): Rec {
  return { name: h.name, ...(h.id ? { id: h.id } : {}), ...(h.addresses.length ? { ip: [...h.addresses] } : {}) };
}

function processFields(p: ProcessInfo): Rec {
  return {
    pid: p.pid,
    ...(p.name ? { name: p.name } : {}),
    ...(p.executable ? { executable: p.executable } : {}),
    ...(p.commandLine ? { command_line: p.commandLine } : {}),
  };
}

/** The flow's ECS `source`/`destination`/`network` beside the Zeek fields it keeps as they were. */
function flowFields(flow: Flow, direction: string): Rec {
  return {
    source: { ip: flow.orig, port: flow.origPort },
    destination: { ip: flow.resp, port: flow.respPort },
    network: { direction, transport: flow.proto, type: familyOf(flow.orig) },
  };
}

/** dns/ssl/http records of the same uid, by log name. */
function appFields(apps: AppRecord[]): Rec | undefined {
  if (apps.length === 0) return undefined;
  const out: Record<string, Rec[]> = {};
  for (const a of apps) (out[a.log] ??= []).push(a.summary);
  return out;
}

/** The Zeek record with the ECS fields of the flow and its host, the app records, and what the beat adds. */
function flowRecord(
  subtopic: string,
  type: string,
  flow: Flow,
  direction: string,
  host: HostInfo,
  apps: AppRecord[],
  extra: Rec,
): BeatRecord {
  const zeek = appFields(apps);
  return {
    subtopic,
    time: flow.startMs,
    entity: { type, id: flow.uid },
    data: { ...flow.record, ...flowFields(flow, direction), host: hostFields(host), ...extra, ...(zeek ? { zeek } : {}) },
  };
}

/** `beats/correlate/conn`: the Zeek conn record with the host, process and user that made it. */
export function connRecord(a: Attribution): BeatRecord {
  const user = { ...(a.process.userId ? { id: a.process.userId } : {}), ...(a.process.userName ? { name: a.process.userName } : {}) };
  return flowRecord('conn', 'CorrelatedConn', a.flow, a.direction, a.host, a.apps, {
    process: processFields(a.process),
    ...(Object.keys(user).length ? { user } : {}),
    correlate: {
      matched_by: a.socket.source,
      query: a.socket.query,
      socket_time: new Date(a.socket.timeMs).toISOString(),
      waited_ms: a.waitedMs,
    },
  });
}

/** `beats/correlate/unattributed`: a flow of a known host that no socket row explained in its window. */
export function unattributedRecord(u: Unattributed): BeatRecord {
  return flowRecord('unattributed', 'UnattributedConn', u.flow, u.direction, u.host, u.apps, { correlate: { reason: u.reason } });
}
