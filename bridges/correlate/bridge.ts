import type { BeatRecord, Bridge, BridgeContext } from '../contract.js';
import { isJsonObject } from '../shared/json-object.js';
import { topicPath } from '../shared/topic.js';
import type { CorrelateConfig } from './config.js';
import { Correlator, type CorrelatorState } from './correlator.js';
import { APP_LOGS, appRecordOf, flowOf, rowFact } from './inputs.js';
import { connRecord, hostFields, unattributedRecord } from './output.js';
import { normalAddress } from './address.js';
import { alertAddresses, HostQueries, type QueryReason } from './query.js';
import { registerCorrelateMetrics } from './metrics.js';
import { parseBoundedJson } from '../../broker/bounded-json.js';

type Rec = Record<string, unknown>;

/** The beats whose records are joined, by name. */
const ZEEK = 'zeek';
const OSQUERY = 'osquery';
const FLEET = 'fleet';
const ALERTS = '$SYS/broker/alerts/#';
const STATE_KEY = 'state';
const TICK_MS = 1000;
const SAVE_EVERY_MS = 5000;
/** Hosts the osquery beat serves (only those can be asked), at most. */
const MAX_QUERYABLE = 65_536;

/**
 * `beat correlate`: follows the Zeek, osquery and Fleet beats' records in-process (ctx.records), joins
 * flows with socket rows (correlator.ts) and publishes `conn`, `unattributed` and `query/<host>`.
 * Pending flows, recently published uids and known hosts are checkpointed, so a restart neither
 * loses a pending flow nor publishes one twice.
 */
export class CorrelateBridge implements Bridge {
  private timer?: NodeJS.Timeout;
  private ctx?: BridgeContext;
  private correlator?: Correlator;
  private lastSave = 0;
  private savedChanges = -1;
  private readonly events = new Map<string, number>();
  private readonly queryable = new Set<string>();

  constructor(
    private readonly cfg: CorrelateConfig,
    private readonly now: () => number = Date.now,
  ) {}

  async start(ctx: BridgeContext): Promise<void> {
    this.ctx = ctx;
    const correlator = new Correlator(this.cfg, {
      attributed: (a) => this.emit(connRecord(a)),
      unattributed: (u) => this.emit(unattributedRecord(u)),
    });
    this.correlator = correlator;
    registerCorrelateMetrics(ctx.metrics, { correlator, events: this.events });
    const queries = this.cfg.query
      ? new HostQueries(this.cfg.queryIntervalMs, (command) => {
          ctx.publish(this.cfg.queryTopic, JSON.stringify(command), { qos: 1 }).catch((err: Error) => this.lost(err));
        })
      : undefined;

    // follow before the first await: the other beats may emit as soon as they start
    ctx.records(ZEEK, (r) => this.zeek(r, queries));
    ctx.records(OSQUERY, (r) => this.osquery(r, true, queries));
    ctx.records(FLEET, (r) => this.osquery(r, false, queries));
    const saved = await ctx.store.get(STATE_KEY);
    if (saved !== undefined) {
      try {
        correlator.restore(JSON.parse(saved) as CorrelatorState, this.now());
      } catch (err) {
        ctx.log.warn({ err: (err as Error).message }, 'correlate: checkpoint unreadable, starting empty');
      }
    }
    if (queries) {
      await ctx.subscribe(ALERTS, (_topic, payload) => {
        const alert = parseObject(payload);
        if (!alert) return this.count('alert-malformed');
        const risk = isJsonObject(alert.event) && typeof alert.event.risk_score === 'number' ? alert.event.risk_score : 0;
        if (risk < this.cfg.queryMinRisk) return;
        const id = isJsonObject(alert.event) && typeof alert.event.id === 'string' ? alert.event.id : undefined;
        const rule = isJsonObject(alert.rule) && typeof alert.rule.name === 'string' ? alert.rule.name : 'unknown';
        this.trigger(queries, alertAddresses(alert), { alertId: id ?? `${rule}@${String(alert['@timestamp'])}`, rule });
      });
    }
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.save();
  }

  private tick(): void {
    this.correlator!.expire(this.now());
    if (this.now() - this.lastSave >= SAVE_EVERY_MS && this.correlator!.changes !== this.savedChanges)
      this.save().catch((err: Error) => this.ctx!.fail(err));
  }

  private async save(): Promise<void> {
    if (!this.correlator || !this.ctx) return;
    this.lastSave = this.now();
    this.savedChanges = this.correlator.changes;
    await this.ctx.store.set(STATE_KEY, JSON.stringify(this.correlator.snapshot()));
  }

  private emit(record: BeatRecord): void {
    this.ctx!.emit(record).catch((err: Error) => this.lost(err));
  }

  /** A record the broker did not take (the beat is stopping): logged, not retried. */
  private lost(err: Error): void {
    this.count('publish-failed');
    this.ctx?.log.warn({ err: err.message }, 'correlate: a record was not published');
  }

  private count(event: string): void {
    this.events.set(event, (this.events.get(event) ?? 0) + 1);
  }

  private zeek(r: BeatRecord, queries: HostQueries | undefined): void {
    const log = r.subtopic;
    if (log === 'conn') {
      const flow = flowOf(r.data);
      if (typeof flow === 'string') return this.count(`flow-${flow}`);
      this.correlator!.addFlow(flow, this.now());
    } else if (APP_LOGS.has(log)) {
      const app = appRecordOf(log as 'dns' | 'ssl' | 'http', r.data);
      if (app) this.correlator!.addApp(app);
    } else if (log === 'notice' && queries) {
      const d = r.data;
      const addresses = [normalAddress(d.src), normalAddress(d.dst)].filter((a): a is string => a !== undefined);
      const note = typeof d.note === 'string' ? d.note.slice(0, 200) : 'notice';
      const ref = typeof d.uid === 'string' ? d.uid.slice(0, 64) : typeof d.fuid === 'string' ? d.fuid.slice(0, 64) : String(d.ts);
      this.trigger(queries, addresses, { alertId: `zeek-notice:${ref}`, rule: `zeek-notice:${note}` });
    }
  }

  private osquery(r: BeatRecord, served: boolean, queries: HostQueries | undefined): void {
    const d = r.data;
    const sub = r.subtopic;
    if (sub.startsWith('result/')) {
      const fact = rowFact(d, this.now());
      if (served && typeof d.hostIdentifier === 'string') this.servedBy(d.hostIdentifier);
      if (fact.kind === 'socket') this.correlator!.addSocket(fact.row, this.now());
      else if (fact.kind === 'address') this.correlator!.addHostAddress(fact.host, fact.address, fact.hostId);
      else if (fact.kind === 'rejected') this.count(`row-${fact.reason}`);
    } else if (served && sub.startsWith('enrolled/')) {
      const host = typeof d.hostIdentifier === 'string' ? d.hostIdentifier : undefined;
      const address = normalAddress(d.address);
      if (!host) return;
      this.servedBy(host);
      if (address) this.correlator!.addHostAddress(host, address, typeof d.uuid === 'string' ? d.uuid : undefined);
    } else if (served && sub === 'query/accepted') {
      queries?.accepted(d);
    } else if (served && sub.startsWith('distributed/') && queries) {
      const answer = queries.answered(d);
      if (!answer) return;
      const host = this.correlator!.host(answer.host);
      this.emit({
        subtopic: `query/${topicPath(answer.host)}`,
        entity: { type: 'CorrelatedHostQuery', id: answer.queryId },
        data: {
          '@timestamp': new Date(this.now()).toISOString(),
          alert: { id: answer.alertId, rule: answer.rule },
          host: host ? hostFields(host) : { name: answer.host },
          ...(answer.peer ? { related: { ip: [answer.peer] } } : {}),
          osquery: { query_id: answer.queryId, sql: answer.sql, status: d.status, ...(d.message ? { message: d.message } : {}) },
          rows: Array.isArray(d.rows) ? d.rows : [],
        },
      });
    }
  }

  private servedBy(host: string): void {
    if (this.queryable.has(host)) return;
    if (this.queryable.size >= MAX_QUERYABLE) this.queryable.delete(this.queryable.values().next().value!);
    this.queryable.add(host);
  }

  /** Asks each known, queryable host among the addresses about the others. */
  private trigger(queries: HostQueries, addresses: string[], reason: QueryReason): void {
    for (const a of addresses) {
      const host = this.correlator!.hostOf(a);
      if (!host || !this.queryable.has(host.name)) continue;
      const peer = addresses.find((x) => !host.addresses.includes(x));
      this.count(`query-${queries.ask(host.name, peer, reason, this.now())}`);
    }
  }
}

function parseObject(payload: Buffer): Rec | undefined {
  try {
    const v: unknown = parseBoundedJson(payload);
    return isJsonObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}
