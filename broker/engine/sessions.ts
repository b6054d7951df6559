import type { Aedes, Client } from './vendor/aedes/aedes.js';

type AedesClients = Record<string, Client & { subscriptions: Record<string, unknown> }>;
const clientsOf = (aedes: Aedes) => (aedes as unknown as { clients: AedesClients }).clients;

/** Subscriptions of connected clients (Mosquitto's subscriptions/count also includes offline sessions'). */
export function countSubscriptions(aedes: Aedes): number {
  let n = 0;
  for (const c of Object.values(clientsOf(aedes))) n += Object.keys(c.subscriptions ?? {}).length;
  return n;
}

/** Shared subscriptions (`$share/<group>/<filter>`) of connected clients (Mosquitto's shared_subscriptions/count). */
export function countSharedSubscriptions(aedes: Aedes): number {
  let n = 0;
  for (const c of Object.values(clientsOf(aedes))) n += Object.keys(c.subscriptions ?? {}).filter((f) => f.startsWith('$share/')).length;
  return n;
}

/** Persistent sessions whose client is not connected. */
export function offlineSessions(aedes: Aedes, sessions: string[] | number): number {
  const clients = clientsOf(aedes);
  if (typeof sessions === 'number') return Math.max(0, sessions - Object.values(clients).filter((c) => !c.clean).length);
  return sessions.filter((id) => !clients[id]).length;
}
