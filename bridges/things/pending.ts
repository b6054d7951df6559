import { deviceLevel } from './messages.js';

/** How long an RPC request waits for a reply, or an attribute request for its answer. */
const PENDING_MS = 10 * 60_000;
/** Upper bound of each table: a flood of requests evicts the oldest, it does not grow memory. */
const MAX_ENTRIES = 10_000;

/** A Map whose entries expire and whose size is bounded (oldest out first). */
class ExpiringMap<V> {
  private readonly map = new Map<string, { value: V; until: number }>();

  set(key: string, value: V): void {
    this.map.delete(key);
    this.map.set(key, { value, until: Date.now() + PENDING_MS });
    if (this.map.size > MAX_ENTRIES) this.map.delete(this.map.keys().next().value as string);
  }

  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    if (e.until < Date.now()) {
      this.map.delete(key);
      return undefined;
    }
    return e.value;
  }

  take(key: string): V | undefined {
    const v = this.get(key);
    this.map.delete(key);
    return v;
  }
}

/**
 * What the ThingsBoard beat waits for: RPC requests that mqprobe clients may answer (a reply to
 * anything else is refused, so a client cannot inject replies), the replies it sent (so that a
 * transport echoing them back does not turn them into records), and its attribute requests.
 */
export class PendingRequests {
  private readonly rpc = new ExpiringMap<string>();
  private readonly ownReplies = new ExpiringMap<true>();
  private readonly attributes = new ExpiringMap<string[]>();
  /** Device names by their topic level, for commands that name a device by its level. */
  private readonly names = new ExpiringMap<string>();

  /** A device that sent something: commands may name it by its topic level. */
  seen(device: string): void {
    this.names.set(deviceLevel(device), device);
  }

  rpcRequested(device: string, id: number): void {
    this.rpc.set(`${deviceLevel(device)}\u0000${id}`, device);
  }

  /** The device whose request `id` a reply on `level` answers (once), or undefined. */
  rpcReplying(level: string, id: number): string | undefined {
    const device = this.rpc.take(`${level}\u0000${id}`);
    if (device !== undefined) this.ownReplies.set(`${device}\u0000${id}`, true);
    return device;
  }

  takeOwnReply(device: string, id: number): boolean {
    return this.ownReplies.take(`${device}\u0000${id}`) !== undefined;
  }

  attributesRequested(device: string, id: number, keys: string[]): void {
    this.attributes.set(`${device}\u0000${id}`, keys);
  }

  attributeKeys(device: string, id: number): string[] | undefined {
    return this.attributes.take(`${device}\u0000${id}`);
  }

  deviceNamed(level: string): string | undefined {
    return this.names.get(level);
  }
}
