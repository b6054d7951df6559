import type { Counter } from 'prom-client';
import type { BridgeContext } from '../contract.js';
import { counter } from '../../broker/metrics.js';
import type { OpcuaConfig } from './config.js';

/** How often "still hearing the server" is written to the beat store while all is well. */
const SAVE_EVERY_MS = 5000;
const LAST_SEEN = 'last_seen';
const GAP_REASON = 'gap_reason';

/**
 * Remembers in the beat store (a file, or Redis) when the beat last heard the OPC-UA server, and why
 * it stopped hearing it (connection lost, beat stopped); nothing written means the broker died
 * without stopping. When the beat is connected again, the time in between is a gap in the data:
 * reported as a retained record on `beats/opcua/<opcua_name>/$gap`, a warning and the metrics
 * `mqprobe_beat_opcua_gaps_total` / `mqprobe_beat_opcua_gap_seconds_total`. The store outlives
 * restarts of the beat and of the broker, so every gap is reported once, after it ends.
 */
export class GapTracker {
  private running = false;
  private savedAt = 0;
  private readonly gaps: Counter<'beat'>;
  private readonly gapSeconds: Counter<'beat'>;

  constructor(
    private readonly ctx: BridgeContext,
    private readonly cfg: OpcuaConfig,
  ) {
    this.gaps = counter(
      ctx.metrics,
      'mqprobe_beat_opcua_gaps_total',
      'Times the OPC-UA beat was connected again after not hearing the server.',
      ['beat'],
    );
    this.gapSeconds = counter(
      ctx.metrics,
      'mqprobe_beat_opcua_gap_seconds_total',
      'Seconds the OPC-UA beat did not hear the server, over all gaps.',
      ['beat'],
    );
  }

  /** Connected and monitoring: reports the gap that ends now, if there was one. */
  async connected(): Promise<void> {
    const { store, log, name } = this.ctx;
    const last = Number(await store.get(LAST_SEEN));
    const reason = (await store.get(GAP_REASON)) ?? 'mqprobe stopped without a clean shutdown';
    const now = Date.now();
    this.running = true;
    await this.save(now);
    await store.delete(GAP_REASON);
    if (!Number.isFinite(last) || last <= 0 || last > now) return;
    const durationMs = now - last;
    this.gaps.inc({ beat: name });
    this.gapSeconds.inc({ beat: name }, durationMs / 1000);
    const from = new Date(last).toISOString();
    const to = new Date(now).toISOString();
    log.warn(`no data from ${this.cfg.endpoint} between ${from} and ${to} (${Math.round(durationMs / 1000)} s): ${reason}`);
    const opcuaName = this.cfg.name!;
    await this.ctx.emit({
      subtopic: `${opcuaName}/$gap`,
      data: { systemName: opcuaName, endpoint: this.cfg.endpoint, event: 'gap', from, to, durationMs, reason },
      entity: { type: 'OpcuaServer', id: opcuaName },
      time: now,
      // retained: a client subscribing later still learns of the last gap
      retain: true,
    });
  }

  /** Heard the server (keep-alive or data). */
  async alive(): Promise<void> {
    const now = Date.now();
    if (this.running && now - this.savedAt >= SAVE_EVERY_MS) await this.save(now);
  }

  async lostNow(reason: string): Promise<void> {
    await this.end(reason);
  }

  async stopped(): Promise<void> {
    await this.end('the beat was stopped (broker shutdown or restart)');
  }

  private async end(reason: string): Promise<void> {
    if (!this.running) return;
    this.running = false;
    await this.save(Date.now());
    await this.ctx.store.set(GAP_REASON, reason);
  }

  private async save(now: number): Promise<void> {
    this.savedAt = now;
    await this.ctx.store.set(LAST_SEEN, String(now));
  }
}
