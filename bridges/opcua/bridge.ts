import type {
  ClientMonitoredItemBase,
  ClientSession,
  ClientSubscription,
  DataValue,
  MonitoringParametersOptions,
  OPCUAClient,
  UserIdentityInfo,
} from 'node-opcua-client';
import { join } from 'node:path';
import type { Counter, Gauge } from 'prom-client';
import type { Bridge, BridgeContext } from '../contract.js';
import { counter, gauge } from '../../broker/metrics.js';
import { readSecretFile } from '../shared/secret-file.js';
import type { OpcuaConfig } from './config.js';
import { loadNodeOpcua, type OpcuaModule } from './node-opcua.js';
import { openPki, pemFiles, untrustedError, describeCertificate, type BeatPki } from './pki.js';
import { resolveTargets, type Target } from './browse.js';
import { valueFields } from './value.js';
import { GapTracker } from './gap.js';

/** OPC-UA's Server object and the BaseModelChangeEventType it raises when nodes come and go. */
const SERVER_OBJECT = 'i=2253';
const BASE_MODEL_CHANGE_EVENT = 'i=2132';
/** Model change events often come in bursts: browse once after the burst. */
const REBROWSE_DEBOUNCE_MS = 500;
/** Keep-alives the server may miss before the beat calls the connection dead. */
const KEEPALIVE_MISSES = 3;
const MAX_KEEPALIVE_COUNT = 10;
const DISCONNECT_WAIT_MS = 3000;
/** Status codes with which a server refuses a deadband on a variable (not numeric, no EURange). */
const FILTER_REFUSALS = new Set(['BadFilterNotAllowed', 'BadMonitoredItemFilterUnsupported', 'BadDeadbandFilterInvalid']);

interface Monitored {
  target: Target;
  item: ClientMonitoredItemBase;
}

interface OpcuaMetrics {
  items: Gauge<'beat'>;
  changes: Counter<'beat'>;
  rebrowses: Counter<'beat'>;
}

/**
 * The OPC-UA beat: one node-opcua client session with one subscription whose monitored items are the
 * configured node ids and the variables the browse paths resolve to (again on model change events and
 * every opcua_rebrowse_interval). Each value change becomes a record on
 * `beats/opcua/<opcua_name>/<browse path | node id>`. A lost connection goes back to the frame, which
 * restarts the beat with doubling delays; the restarted beat reports the gap (see GapTracker).
 */
export class OpcuaBridge implements Bridge {
  private ctx?: BridgeContext;
  private ua?: OpcuaModule;
  private client?: OPCUAClient;
  private subscription?: ClientSubscription;
  private metrics?: OpcuaMetrics;
  private gap?: GapTracker;
  private readonly monitored = new Map<string, Monitored>();
  private stopping = false;
  private lost = false;
  private chain: Promise<void> = Promise.resolve();
  private lastHeard = Date.now();
  private timers: NodeJS.Timeout[] = [];
  private rebrowse: { timer?: NodeJS.Timeout; running?: Promise<void>; again: boolean } = { again: false };

  constructor(private readonly cfg: OpcuaConfig) {}

  async start(ctx: BridgeContext): Promise<void> {
    this.ctx = ctx;
    const { ua, pki: pkiModule } = await loadNodeOpcua(ctx.log);
    this.ua = ua;
    this.metrics = {
      items: gauge(ctx.metrics, 'mqprobe_beat_opcua_monitored_items', 'Variables the OPC-UA beat monitors.', ['beat']),
      changes: counter(ctx.metrics, 'mqprobe_beat_opcua_changes_total', 'Value changes received from the OPC-UA server.', ['beat']),
      rebrowses: counter(ctx.metrics, 'mqprobe_beat_opcua_rebrowses_total', 'Times the browse paths were resolved again.', ['beat']),
    };
    this.gap = new GapTracker(ctx, this.cfg);
    const pki = await openPki(pkiModule, this.cfg, ctx.stateDir);
    const trustedBefore = await pemFiles(pki.trustedFolder);
    const client = ua.OPCUAClient.create({
      applicationName: 'mqprobe',
      endpointMustExist: false,
      securityMode: ua.MessageSecurityMode[this.cfg.securityMode],
      securityPolicy: ua.SecurityPolicy[this.cfg.securityPolicy],
      clientCertificateManager: pki.manager,
      certificateFile: this.cfg.certificateFile,
      privateKeyFile: this.cfg.privateKeyFile,
      // one attempt per start: retrying is the frame's job, with its doubling delays
      connectionStrategy: { maxRetry: 0, initialDelay: 1000, maxDelay: 1000 },
      keepSessionAlive: false,
      requestedSessionTimeout: 60_000,
    });
    this.client = client;
    await this.connect(client, pki);
    await this.noteFirstUse(pki, trustedBefore);
    client.on('connection_lost', () => this.connectionLost(`connection to ${this.cfg.endpoint} lost`));
    client.on('close', () => this.connectionLost(`connection to ${this.cfg.endpoint} closed`));
    const session = await this.session(client);
    session.on('session_closed', () => this.connectionLost(`the session on ${this.cfg.endpoint} was closed`));
    const subscription = await session.createSubscription2({
      requestedPublishingInterval: this.cfg.publishingIntervalMs,
      requestedMaxKeepAliveCount: MAX_KEEPALIVE_COUNT,
      requestedLifetimeCount: MAX_KEEPALIVE_COUNT * 6,
      maxNotificationsPerPublish: 0,
      publishingEnabled: true,
      priority: 1,
    });
    this.subscription = subscription;
    subscription.on('keepalive', () => this.heard());
    subscription.on('received_notifications', () => this.heard());
    subscription.on('terminated', () => this.connectionLost(`the server ended the subscription on ${this.cfg.endpoint}`));
    this.watchKeepAlive(subscription);
    await this.monitor(session, subscription);
    await this.watchModelChanges(subscription);
    if (this.cfg.rebrowseIntervalMs > 0)
      this.timers.push(setInterval(() => this.requestRebrowse(session, subscription), this.cfg.rebrowseIntervalMs).unref());
    await this.gap.connected();
    ctx.log.info(
      `connected to ${this.cfg.endpoint} (${this.cfg.securityPolicy}/${this.cfg.securityMode}), monitoring ${this.monitored.size} variables`,
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.rebrowse.timer);
    if (!this.lost) await this.gap?.stopped();
    const client = this.client;
    if (client)
      await Promise.race([client.disconnect().catch(() => undefined), new Promise((r) => setTimeout(r, DISCONNECT_WAIT_MS).unref())]);
    await this.rebrowse.running;
    await this.chain;
    this.metrics?.items.set({ beat: this.ctx!.name }, 0);
  }

  private async connect(client: OPCUAClient, pki: BeatPki): Promise<void> {
    try {
      await client.connect(this.cfg.endpoint!);
    } catch (err) {
      const msg = (err as Error).message;
      if (/BadCertificateUntrusted|certificate verification failed/i.test(msg)) throw await untrustedError(pki, this.cfg.endpoint!);
      throw new Error(`cannot connect to ${this.cfg.endpoint} (${this.cfg.securityPolicy}/${this.cfg.securityMode}): ${firstLine(msg)}`);
    }
  }

  /** Says so when trust-on-first-use just trusted a server certificate. */
  private async noteFirstUse(pki: BeatPki, before: string[]): Promise<void> {
    if (pki.trustOnFirstUse !== 'now') return;
    const added = (await pemFiles(pki.trustedFolder)).filter((f) => !before.includes(f));
    for (const f of added) {
      const file = join(pki.trustedFolder, f);
      this.ctx!.log.warn(
        `trusted the server certificate of ${this.cfg.endpoint} on first use: ${file} (${await describeCertificate(file)}); later a different certificate will be refused`,
      );
    }
  }

  private async session(client: OPCUAClient): Promise<ClientSession> {
    const ua = this.ua!;
    let identity: UserIdentityInfo = { type: ua.UserTokenType.Anonymous };
    if (this.cfg.username)
      identity = {
        type: ua.UserTokenType.UserName,
        userName: this.cfg.username,
        password: await readSecretFile(this.cfg.passwordFile!, 'opcua_password_file'),
      };
    try {
      return await client.createSession(identity);
    } catch (err) {
      const who = this.cfg.username
        ? `user "${this.cfg.username}" (check opcua_username and opcua_password_file)`
        : 'an anonymous session (set opcua_username and opcua_password_file)';
      throw new Error(`the OPC-UA server at ${this.cfg.endpoint} refused ${who}: ${firstLine((err as Error).message)}`);
    }
  }

  private heard(): void {
    this.lastHeard = Date.now();
    this.gap?.alive().catch((err: Error) => this.ctx!.log.warn(`cannot record the last contact in the beat store: ${err.message}`));
  }

  /** A server that stops answering without closing the socket: no keep-alive for several periods. */
  private watchKeepAlive(subscription: ClientSubscription): void {
    const period = subscription.publishingInterval * subscription.maxKeepAliveCount;
    this.lastHeard = Date.now();
    this.timers.push(
      setInterval(() => {
        const silent = Date.now() - this.lastHeard;
        if (silent > period * KEEPALIVE_MISSES)
          this.connectionLost(`no keep-alive from ${this.cfg.endpoint} for ${Math.round(silent / 1000)} s`);
      }, period).unref(),
    );
  }

  private connectionLost(reason: string): void {
    if (this.stopping || this.lost) return;
    this.lost = true;
    this.gap!.lostNow(reason)
      .catch((err: Error) => this.ctx!.log.warn(`cannot record the lost connection in the beat store: ${err.message}`))
      .finally(() => this.ctx!.fail(new Error(reason)));
  }

  private monitoringParameters(withDeadband: boolean): MonitoringParametersOptions {
    const ua = this.ua!;
    const { deadband, trigger } = this.cfg;
    const triggers = {
      status: ua.DataChangeTrigger.Status,
      status_value: ua.DataChangeTrigger.StatusValue,
      status_value_timestamp: ua.DataChangeTrigger.StatusValueTimestamp,
    };
    const deadbandType =
      !withDeadband || deadband.kind === 'none'
        ? ua.DeadbandType.None
        : deadband.kind === 'absolute'
          ? ua.DeadbandType.Absolute
          : ua.DeadbandType.Percent;
    return {
      samplingInterval: this.cfg.samplingIntervalMs,
      queueSize: this.cfg.queueSize,
      discardOldest: true,
      filter: new ua.DataChangeFilter({
        trigger: triggers[trigger],
        deadbandType,
        deadbandValue: deadbandType === ua.DeadbandType.None ? 0 : (deadband as { value: number }).value,
      }),
    };
  }

  /** Brings the monitored items in line with what the monitors resolve to now. */
  private async monitor(session: ClientSession, subscription: ClientSubscription): Promise<void> {
    const ctx = this.ctx!;
    const { targets, cut } = await resolveTargets(this.ua!, session, this.cfg.monitors, this.cfg.maxMonitoredItems);
    if (cut > 0)
      ctx.log.warn(
        `opcua_monitor matches ${cut} variables more than opcua_max_monitored_items ${this.cfg.maxMonitoredItems}; those are not monitored`,
      );
    const wanted = new Map(targets.map((t) => [t.nodeId, t]));
    for (const [nodeId, m] of this.monitored) {
      const now = wanted.get(nodeId);
      if (now)
        m.target = now; // a renamed parent changes the topic of the same node
      else {
        this.monitored.delete(nodeId);
        await m.item.terminate().catch(() => undefined);
        ctx.log.info(`no longer monitoring ${m.target.browsePath ?? nodeId}: it is gone from the address space`);
      }
    }
    const added = targets.filter((t) => !this.monitored.has(t.nodeId));
    const refused = await this.addItems(subscription, added, true);
    const retry = refused.filter((r) => FILTER_REFUSALS.has(r.status));
    // a deadband only applies to numeric variables (percent: with an EURange); the others are monitored without it
    const still =
      retry.length > 0
        ? await this.addItems(
            subscription,
            retry.map((r) => r.target),
            false,
          )
        : [];
    for (const r of [...refused.filter((x) => !FILTER_REFUSALS.has(x.status)), ...still])
      ctx.log.warn(`cannot monitor ${r.target.browsePath ?? r.target.nodeId}: ${r.status}`);
    this.metrics!.items.set({ beat: ctx.name }, this.monitored.size);
  }

  private async addItems(
    subscription: ClientSubscription,
    targets: Target[],
    withDeadband: boolean,
  ): Promise<{ target: Target; status: string }[]> {
    if (targets.length === 0) return [];
    const ua = this.ua!;
    const group = await subscription.monitorItems(
      targets.map((t) => ({ nodeId: t.nodeId, attributeId: ua.AttributeIds.Value })),
      this.monitoringParameters(withDeadband),
      ua.TimestampsToReturn.Both,
    );
    const refused: { target: Target; status: string }[] = [];
    group.monitoredItems.forEach((item, i) => {
      if (item.statusCode.isGood()) this.monitored.set(targets[i].nodeId, { target: targets[i], item });
      else refused.push({ target: targets[i], status: item.statusCode.name });
    });
    group.on('changed', (item, dataValue) => {
      const m = this.monitored.get(item.itemToMonitor.nodeId.toString());
      if (m?.item !== item) return;
      try {
        this.changed(m.target, dataValue);
      } catch (err) {
        // a value this beat cannot render costs that one change, not the subscription
        this.ctx!.log.warn(`cannot render the change of ${m.target.browsePath ?? m.target.nodeId}: ${(err as Error).message}`);
      }
    });
    return refused;
  }

  private changed(target: Target, dv: DataValue): void {
    const ctx = this.ctx!;
    this.metrics!.changes.inc({ beat: ctx.name });
    const name = this.cfg.name!;
    const data = {
      systemName: name,
      endpoint: this.cfg.endpoint,
      address: target.nodeId,
      browsePath: target.browsePath,
      topicName: target.topic,
      topicType: target.topicType,
      ...valueFields(this.ua!, dv),
    };
    const time = (dv.sourceTimestamp ?? dv.serverTimestamp)?.getTime();
    this.chain = this.chain.then(() =>
      ctx
        .emit({
          subtopic: `${name}/${target.topic}`,
          data,
          entity: { type: 'OpcuaVariable', id: `${name}:${target.topic.replace(/\//g, ':')}` },
          time,
        })
        .catch((err: Error) => {
          if (!this.stopping)
            ctx.log.warn({ err: err.message }, `cannot emit the change of ${target.browsePath ?? target.nodeId}: ${err.message}`);
        }),
    );
  }

  /** Model change events from the Server object trigger a re-resolve; servers without them rely on the interval. */
  private async watchModelChanges(subscription: ClientSubscription): Promise<void> {
    const ua = this.ua!;
    const session = subscription.session as ClientSession;
    try {
      const item = await subscription.monitor(
        { nodeId: SERVER_OBJECT, attributeId: ua.AttributeIds.EventNotifier },
        {
          samplingInterval: 0,
          queueSize: 100,
          discardOldest: true,
          filter: ua.constructEventFilter(['EventType'], ua.ofType(BASE_MODEL_CHANGE_EVENT)),
        },
        ua.TimestampsToReturn.Neither,
      );
      if (!item.statusCode.isGood()) throw new Error(item.statusCode.name);
      item.on('changed', () => this.requestRebrowse(session, subscription));
    } catch (err) {
      this.ctx!.log.info(
        `${this.cfg.endpoint} offers no model change events (${(err as Error).message}); browse paths are resolved again every opcua_rebrowse_interval`,
      );
    }
  }

  private requestRebrowse(session: ClientSession, subscription: ClientSubscription): void {
    if (this.stopping || this.lost) return;
    clearTimeout(this.rebrowse.timer);
    this.rebrowse.timer = setTimeout(() => {
      if (this.rebrowse.running) {
        this.rebrowse.again = true;
        return;
      }
      this.rebrowse.running = this.monitor(session, subscription)
        .then(() => this.metrics!.rebrowses.inc({ beat: this.ctx!.name }))
        .catch((err: Error) => this.ctx!.log.warn(`resolving the browse paths again failed: ${firstLine(err.message)}`))
        .finally(() => {
          this.rebrowse.running = undefined;
          if (this.rebrowse.again) {
            this.rebrowse.again = false;
            this.requestRebrowse(session, subscription);
          }
        });
    }, REBROWSE_DEBOUNCE_MS);
  }
}

/** node-opcua's messages can span many lines (certificate dumps); the first says what happened. */
function firstLine(s: string): string {
  return s.split('\n')[0].trim();
}
