import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { BeatStore } from '../contract.js';

/** What the beat remembers of an enrolled osquery agent (kept in the beat store, so restarts keep it). */
export interface EnrolledNode {
  hostIdentifier: string;
  hostDetails: Record<string, unknown>;
  enrolledAt: number;
  lastSeen: number;
}

/** Store keys: `node:<node key>`. Node keys are 32 random bytes, base64url: not guessable. */
const PREFIX = 'node:';
const NODE_KEY = /^[A-Za-z0-9_-]{43}$/;
const MAX_HOST_IDENTIFIER = 256;

export class EnrollError extends Error {
  override name = 'EnrollError';
}

/** Compares secrets in constant time (through their digests, so lengths do not leak either). */
function sameSecret(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

/**
 * Enrollment and node-key checks of osquery's TLS remote API: `enroll` trades the enroll secret for a
 * fresh node key; every other endpoint presents that key and gets `node_invalid` when it is unknown.
 */
export class NodeRegistry {
  constructor(
    private readonly store: BeatStore,
    private readonly enrollSecret: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Returns the new node key, or throws EnrollError (wrong secret, bad host identifier); never echoes the secret. */
  async enroll(secret: unknown, hostIdentifier: unknown, hostDetails: unknown): Promise<string> {
    if (typeof secret !== 'string' || !sameSecret(secret, this.enrollSecret)) throw new EnrollError('invalid enroll secret');
    if (typeof hostIdentifier !== 'string' || hostIdentifier === '' || hostIdentifier.length > MAX_HOST_IDENTIFIER) {
      throw new EnrollError(`host_identifier must be a string of 1 to ${MAX_HOST_IDENTIFIER} characters`);
    }
    const details =
      hostDetails !== null && typeof hostDetails === 'object' && !Array.isArray(hostDetails)
        ? (hostDetails as Record<string, unknown>)
        : {};
    const nodeKey = randomBytes(32).toString('base64url');
    const t = this.now();
    const node: EnrolledNode = { hostIdentifier, hostDetails: details, enrolledAt: t, lastSeen: t };
    await this.store.set(PREFIX + nodeKey, JSON.stringify(node));
    return nodeKey;
  }

  /** The node a key belongs to (its check-in time updated), or undefined for a malformed or unknown key. */
  async checkIn(nodeKey: unknown): Promise<EnrolledNode | undefined> {
    if (typeof nodeKey !== 'string' || !NODE_KEY.test(nodeKey)) return undefined;
    const text = await this.store.get(PREFIX + nodeKey);
    if (text === undefined) return undefined;
    const node = JSON.parse(text) as EnrolledNode;
    node.lastSeen = this.now();
    await this.store.set(PREFIX + nodeKey, JSON.stringify(node));
    return node;
  }

  /** Every enrolled node with its key (for distributed queries addressed to host identifiers or `all`). */
  async nodes(): Promise<Map<string, EnrolledNode>> {
    const out = new Map<string, EnrolledNode>();
    for (const key of await this.store.keys(PREFIX)) {
      const text = await this.store.get(key);
      if (text !== undefined) out.set(key.slice(PREFIX.length), JSON.parse(text) as EnrolledNode);
    }
    return out;
  }
}
