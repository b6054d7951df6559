import type { ServerResponse } from 'node:http';
import type { HttpIdentity } from '../../http-auth.js';
import type { BusyTopic } from './api-types.js';
import type { ViewModel } from './model.js';
import { readSinks } from './components.js';

/** A viewer's stream is dropped when this much of its output is still unsent (it reads too slowly). */
export const VIEWER_BUFFER_BYTES = 256 * 1024;
export const MAX_VIEWERS = 64;
const BUSIEST = 10;

interface Viewer {
  res: ServerResponse;
  who: HttpIdentity;
  /** The last alert (Ring seq) this viewer was sent. */
  alertSeq: number;
}

/**
 * `/api/stream`: one Server-Sent Events stream per open page. Every tick it sends one `tick` event
 * (live rates, counts, versions, the busiest topics the viewer may read, capture sinks and beats,
 * the alerts since its last tick), so a page refetches a table only when it changed and never polls.
 * Per viewer the memory is one unsent buffer, bounded by VIEWER_BUFFER_BYTES.
 */
export class ViewStream {
  private readonly viewers = new Set<Viewer>();
  private stopTick?: () => void;

  constructor(
    private readonly model: ViewModel,
    private readonly visible: (who: HttpIdentity, topic: string) => boolean,
  ) {}

  get size(): number {
    return this.viewers.size;
  }

  full(): boolean {
    return this.viewers.size >= MAX_VIEWERS;
  }

  open(res: ServerResponse, who: HttpIdentity, headers: Record<string, string>): void {
    res.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    });
    const v: Viewer = { res, who, alertSeq: this.model.alerts.seq };
    res.write(`retry: 2000\n\n`);
    this.viewers.add(v);
    this.stopTick ??= this.model.onTick(() => void this.tick().catch(() => undefined));
    res.on('close', () => this.remove(v));
  }

  close(): void {
    for (const v of this.viewers) v.res.end();
    this.viewers.clear();
    this.stopTick?.();
    this.stopTick = undefined;
  }

  private remove(v: Viewer): void {
    this.viewers.delete(v);
    if (this.viewers.size === 0) {
      // no viewer, no per-tick work
      this.stopTick?.();
      this.stopTick = undefined;
    }
  }

  private async tick(): Promise<void> {
    const m = this.model;
    const shared = {
      live: m.live,
      clients: { connected: m.clients.size, version: m.clients.version },
      topics: { tracked: m.topics.size, untracked: m.topics.untracked, version: m.topics.version },
      sinks: await readSinks(m.registry),
      beats: m.parts.beats,
      bridges: m.parts.bridges,
      alerts_seq: m.alerts.seq,
    };
    // viewers with the same user see the same topics: one scan per user, not per viewer
    const busiest = new Map<string, BusyTopic[]>();
    for (const v of this.viewers) {
      if (v.res.destroyed) continue;
      if (v.res.writableLength > VIEWER_BUFFER_BYTES) {
        v.res.destroy();
        continue;
      }
      const user = v.who.username ?? '';
      let top = busiest.get(user);
      if (!top) {
        top = m.topics.busiest(BUSIEST, (t) => this.visible(v.who, t));
        busiest.set(user, top);
      }
      const alerts = m.alerts.since(v.alertSeq);
      v.alertSeq = m.alerts.seq;
      v.res.write(`event: tick\ndata: ${JSON.stringify({ ...shared, busiest: top, alerts })}\n\n`);
    }
  }
}
