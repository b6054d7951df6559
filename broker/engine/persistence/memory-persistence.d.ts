// Types for aedes-persistence's in-memory class, which the package ships without declarations.
declare module 'aedes-persistence/asyncPersistence.js' {
  import type { Readable } from 'node:stream';

  export interface StoredSubscription {
    topic: string;
    qos: number;
    rh?: number;
    rap?: boolean;
    nl?: boolean;
    subscriptionIdentifier?: number;
  }
  export interface StoredPacket {
    cmd: 'publish';
    topic: string;
    payload: Buffer;
    qos: number;
    retain: boolean;
    dup?: boolean;
    messageId?: number;
    brokerId?: string;
    brokerCounter?: number;
    properties?: Record<string, unknown>;
    /** When the Message Expiry Interval ends (ms since the epoch), set by the engine. */
    messageExpiry?: number;
  }
  export default class MemoryPersistence {
    constructor(opts?: Record<string, unknown>);
    setup(broker: unknown): Promise<void>;
    storeRetained(packet: StoredPacket): Promise<void>;
    createRetainedStream(pattern: string): Readable;
    addSubscriptions(client: { id: string }, subs: StoredSubscription[]): Promise<void>;
    removeSubscriptions(client: { id: string }, topics: string[]): Promise<void>;
    subscriptionsByClient(client: { id: string }): Promise<StoredSubscription[]>;
    cleanSubscriptions(client: { id: string }): Promise<void>;
    outgoingEnqueue(sub: { clientId: string }, packet: StoredPacket): Promise<void>;
    outgoingEnqueueCombi(subs: { clientId: string }[], packet: StoredPacket): Promise<void>;
    outgoingStream(client: { id: string }): Readable;
    outgoingClearMessageId(client: { id: string }, packet: StoredPacket): Promise<StoredPacket | undefined>;
    countOffline(): Promise<{ subsCount: number; clientsCount: number }>;
    destroy(): Promise<void>;
  }
}
