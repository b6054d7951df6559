import { maxTrackedParam, type Params } from '../params.js';
import { isInternal, type Emit, type RuleDefinition } from '../detector.js';
import { stateOf, trackedMap } from '../windows.js';
import { networkOf } from '../network.js';

const LEARN_DOC = 'Learning period (event time): what is seen during it is remembered without alerts.';

interface UserNetworks {
  first: number;
  nets: string[];
}

export const newSourceNetwork: RuleDefinition = {
  spec: {
    name: 'new-source-network',
    description:
      'A known user connecting from a source network (/24 for IPv4, /64 for IPv6) it has not used before: informational, worth a look when the credentials may have leaked.',
    entity: 'user.name',
    risk: 'low',
    minimum: 'one accepted connect of a user known for longer than the learning period from a network it has not used',
    params: [
      { name: 'learn', kind: 'duration', default: '1h', doc: `${LEARN_DOC} Counted per user from its first connect.` },
      {
        name: 'max_networks',
        kind: 'count',
        default: '4',
        doc: 'A user seen from this many networks roams (cellular modems, shared accounts): it raises no more alerts.',
      },
      maxTrackedParam('User names'),
    ],
  },
  create(p: Params, emit: Emit) {
    const learn = p.num('learn');
    const maxNetworks = p.num('max_networks');
    const users = trackedMap<UserNetworks>(p.num('max_tracked'));
    return {
      actions: ['client-connected'],
      observe(o) {
        if (o.user === undefined || o.ip === undefined || isInternal(o.clientId)) return;
        const net = networkOf(o.ip);
        if (net === undefined) return;
        const u = stateOf(users, o.user, () => ({ first: o.time, nets: [] }));
        if (u.nets.includes(net) || u.nets.length >= maxNetworks) return;
        const known = [...u.nets];
        u.nets.push(net);
        if (o.time - u.first < learn) return;
        emit({
          key: `user ${o.user} network ${net}`,
          time: o.time,
          message: `user ${o.user} connected from ${o.ip}, a network (${net}) it has not used before`,
          entities: { user: o.user, ip: o.ip, clientId: o.clientId },
          evidence: {
            network: net,
            known_networks: known,
            user_first_seen: new Date(u.first).toISOString(),
            sequences: o.seq >= 0 ? [o.seq] : [],
          },
        });
      },
    };
  },
};

export const newClientId: RuleDefinition = {
  spec: {
    name: 'new-client-id',
    description: 'A client id never seen before connects: informational (a new device, or someone who should not be there).',
    entity: 'mqtt.client_id',
    risk: 'low',
    minimum: 'one accepted connect of a client id not seen since the learning period began',
    params: [
      { name: 'learn', kind: 'duration', default: '1h', doc: `${LEARN_DOC} Starts at the first connect the detectors see.` },
      {
        name: 'ignore_prefixes',
        kind: 'list',
        default: 'auto-',
        doc: 'Client ids starting with one of these are never reported (the broker’s generated ids, `auto_id_prefix`); `-` for none.',
      },
      maxTrackedParam('Client ids remembered', '200000'),
    ],
  },
  create(p: Params, emit: Emit) {
    const learn = p.num('learn');
    const ignore = p.list('ignore_prefixes');
    const known = trackedMap<true>(p.num('max_tracked'));
    let learnUntil = -1;
    return {
      actions: ['client-connected'],
      observe(o) {
        const id = o.clientId;
        if (id === undefined || isInternal(id)) return;
        if (learnUntil < 0) learnUntil = o.time + learn;
        // generated ids are new every time: remembering them would only push real ones out
        if (known.has(id) || ignore.some((prefix) => id.startsWith(prefix))) return;
        known.set(id, true);
        if (o.time < learnUntil) return;
        emit({
          key: `client ${id}`,
          time: o.time,
          message: `client id ${id} connected for the first time${o.ip ? ` (from ${o.ip})` : ''}`,
          entities: { clientId: id, ip: o.ip, user: o.user },
          evidence: { learning_ended: new Date(learnUntil).toISOString(), learn_s: learn / 1000, sequences: o.seq >= 0 ? [o.seq] : [] },
        });
      },
    };
  },
};
