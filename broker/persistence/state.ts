import type { EngineOptions } from '../engine/engine.js';

/** What the broker gets from its state backend (snapshot, Redis or memory); made by createBrokerState (index.ts). */
export interface BrokerState {
  /** Counts for $SYS: retained messages (and their payload bytes) and stored sessions. */
  counts: { retained(): Promise<number>; retainedBytes(): Promise<number>; sessions(): Promise<string[] | number> };
  /** Options for Aedes.createBroker (persistence and mq; Redis: the shared subscription router; alone on its emitter: no client announcements). */
  aedesOptions: {
    persistence?: unknown;
    mq?: unknown;
    sharedSubscriptionRouter?: EngineOptions['sharedSubscriptionRouter'];
    announceClients?: boolean;
  };
  /** Called once Aedes is up: restores the snapshot and starts autosaving. */
  start(): Promise<void>;
  /** Final save (snapshot mode); called after clients are gone. */
  stop(): Promise<void>;
}
