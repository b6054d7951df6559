import type { ClientSession, ReferenceDescription } from 'node-opcua-client';
import { topicPath } from '../shared/topic.js';
import type { MonitorSpec, PathLevel } from './monitor-spec.js';
import type { OpcuaModule } from './node-opcua.js';

/** A variable the beat monitors, and where its changes go. */
export interface Target {
  nodeId: string;
  /** Below `beats/opcua/<opcua_name>/`: the browse path, or the node id as configured. */
  topic: string;
  topicType: 'Path' | 'NodeId';
  browsePath?: string;
}

interface Found {
  nodeId: string;
  names: string[];
  isVariable: boolean;
}

/** Nodes one `#` may visit: bounds the work a huge or cyclic address space can cause. */
const MAX_BROWSED_NODES = 200_000;
const ROOT_FOLDER = 'i=84';

/**
 * Resolves the `opcua_monitor` values against the server's address space: node ids as they are,
 * browse path patterns by browsing forward along hierarchical references (Organizes, HasComponent,
 * HasProperty, …) from the Root folder, level by level, keeping Variables at the end. `+` matches one
 * level, `#` any number (none included, as in MQTT). At most `max` targets; `cut` says how many fell off.
 */
export async function resolveTargets(
  ua: OpcuaModule,
  session: ClientSession,
  monitors: MonitorSpec[],
  max: number,
): Promise<{ targets: Target[]; cut: number }> {
  const byNode = new Map<string, Target>();
  let cut = 0;
  const add = (t: Target) => {
    if (byNode.has(t.nodeId)) return;
    if (byNode.size >= max) cut++;
    else byNode.set(t.nodeId, t);
  };
  for (const m of monitors) {
    if (m.kind === 'node') {
      add({ nodeId: ua.coerceNodeId(m.nodeId).toString(), topic: topicPath(m.nodeId), topicType: 'NodeId' });
      continue;
    }
    for (const f of await matchPath(ua, session, m.levels)) {
      if (!f.isVariable) continue;
      const browsePath = f.names.join('/');
      add({ nodeId: f.nodeId, topic: f.names.map(levelOf).join('/'), topicType: 'Path', browsePath });
    }
  }
  return { targets: [...byNode.values()], cut };
}

/** A browse name as one topic level. */
function levelOf(name: string): string {
  return topicPath(name.replace(/\//g, '_'));
}

async function matchPath(ua: OpcuaModule, session: ClientSession, levels: PathLevel[]): Promise<Found[]> {
  let frontier: Found[] = [{ nodeId: ROOT_FOLDER, names: [], isVariable: false }];
  for (const level of levels) {
    if (frontier.length === 0) break;
    if (level.kind === 'any') return descendants(ua, session, frontier);
    const next: Found[] = [];
    const children = await browseChildren(ua, session, frontier);
    frontier.forEach((parent, i) => {
      for (const ref of children[i]) {
        if (
          level.kind === 'name' &&
          !(ref.browseName.name === level.name && (level.ns === undefined || ref.browseName.namespaceIndex === level.ns))
        )
          continue;
        next.push(found(ua, parent, ref));
      }
    });
    frontier = next;
  }
  return frontier;
}

/** The frontier and everything below it, each node once (address spaces may have cycles). */
async function descendants(ua: OpcuaModule, session: ClientSession, start: Found[]): Promise<Found[]> {
  const seen = new Set(start.map((f) => f.nodeId));
  const all = [...start];
  let frontier = start;
  while (frontier.length > 0) {
    const children = await browseChildren(ua, session, frontier);
    const next: Found[] = [];
    frontier.forEach((parent, i) => {
      for (const ref of children[i]) {
        const f = found(ua, parent, ref);
        if (seen.has(f.nodeId)) continue;
        if (seen.size >= MAX_BROWSED_NODES) throw new Error(`a # browse path reaches more than ${MAX_BROWSED_NODES} nodes; narrow it`);
        seen.add(f.nodeId);
        next.push(f);
      }
    });
    all.push(...next);
    frontier = next;
  }
  return all;
}

function found(ua: OpcuaModule, parent: Found, ref: ReferenceDescription): Found {
  return {
    nodeId: ref.nodeId.toString(),
    names: [...parent.names, ref.browseName.name ?? ''],
    isVariable: ref.nodeClass === ua.NodeClass.Variable,
  };
}

/** The forward hierarchical children (Objects and Variables) of each node, continuation points followed. */
async function browseChildren(ua: OpcuaModule, session: ClientSession, nodes: Found[]): Promise<ReferenceDescription[][]> {
  const results = await ua.browseAll(
    session,
    nodes.map((n) => ({
      nodeId: n.nodeId,
      browseDirection: ua.BrowseDirection.Forward,
      referenceTypeId: 'HierarchicalReferences',
      includeSubtypes: true,
      nodeClassMask: ua.NodeClassMask.Object | ua.NodeClassMask.Variable,
      resultMask: 0x3f,
    })),
  );
  // a node that cannot be browsed (gone, or not allowed) simply has no children
  return results.map((r) => (r.statusCode.isGood() ? (r.references ?? []) : []));
}
