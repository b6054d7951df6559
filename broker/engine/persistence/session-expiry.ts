/**
 * The Session Expiry Interval (MQTT 5, or persistent_client_expiration's for 3.1.1) across a restart. The engine counts a session's expiry with a
 * timer from the moment its connection ended (patch 30); the timer dies with the process, so the
 * persistences store what it counts (the interval and when the connection ended) and give it back
 * to the engine at start, which expires the session on time, or at once when its time passed
 * while the broker was down.
 */

/** When a session's connection ended (ms since the epoch) and its Session Expiry Interval (s). */
export interface SessionExpiry {
  interval: number;
  endedAt: number;
}

/** What of the engine this needs (broker/engine/vendor/aedes, patch 30). */
export interface ExpiringEngine {
  clients: Record<string, { version?: number; sessionExpiryInterval?: number } | undefined>;
  sessionExpiry(clientId: string): SessionExpiry | undefined;
  restoreSessionExpiry(clientId: string, interval: number, endedAt: number): void;
}

/** 0xFFFFFFFF: the session never expires ([MQTT-3.1.2-11]): nothing to store. */
export const NEVER_EXPIRES = 0xffffffff;

/**
 * The expiry to store for a session: one counting since its connection ended, or for a connected client
 * the one that would start now (a crash ends its connection; the last save is the latest moment it is
 * known to have had one). Undefined for a session that never expires (3.1.1 persistent sessions without
 * persistent_client_expiration, which the engine cuts to that interval: patch 45).
 */
export function sessionExpiryOf(engine: ExpiringEngine, clientId: string, now = Date.now()): SessionExpiry | undefined {
  const client = engine.clients[clientId];
  if (!client) return engine.sessionExpiry(clientId);
  const interval = client.sessionExpiryInterval ?? NEVER_EXPIRES;
  return interval < NEVER_EXPIRES ? { interval, endedAt: now } : undefined;
}

export const expiresAt = (e: SessionExpiry): number => e.endedAt + e.interval * 1000;

/** A stored value in an error message, cut short: stored garbage can be large. */
export const shown = (v: unknown): string => String(JSON.stringify(v)).slice(0, 40);

/** A stored expiry as read back (a snapshot or a Redis record), or why it is not one. */
export function parseSessionExpiry(v: unknown): SessionExpiry | string {
  const e = v as Partial<SessionExpiry> | null;
  if (typeof e !== 'object' || e === null) return 'not an object';
  if (!Number.isInteger(e.interval) || e.interval! < 0 || e.interval! >= NEVER_EXPIRES)
    return `interval ${shown(e.interval)} is not 0..4294967294 s`;
  if (!Number.isSafeInteger(e.endedAt) || e.endedAt! < 0) return `endedAt ${shown(e.endedAt)} is not a time in ms`;
  return { interval: e.interval!, endedAt: e.endedAt! };
}
