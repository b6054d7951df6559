import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Counter } from 'prom-client';
import type { Bridge, BridgeContext, CommonBeatConfig } from '../contract.js';
import { toNgsiEntity } from '../shared/ngsi.js';
import { counter } from '../../broker/metrics.js';
import { readSecretFile } from '../shared/secret-file.js';
import type { ThingsConfig } from './config.js';
import {
  DEVICE_TOPICS,
  GATEWAY_TOPICS,
  deviceLevel,
  parseDeviceMessage,
  parseGatewayMessage,
  type Parsed,
  type ThingsEvent,
} from './messages.js';
import { PendingRequests } from './pending.js';
import { parseCommand, type Command } from './commands.js';

/** Refusal reasons of MQTT 3.1.1 CONNACK return codes, as mqtt.js reports them in `err.code`. */
const CONNACK_REASONS: Record<number, string> = {
  1: 'unacceptable protocol version',
  2: 'client id rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
};
const CONNECT_TIMEOUT_MS = 10_000;
/** At most this many problem lines per window; the rest are only counted. */
const PROBLEM_LOG = { max: 10, windowMs: 10_000 };

interface ThingsMetrics {
  messages: Counter<'beat'>;
  rejected: Counter<'beat'>;
  commands: Counter<'beat' | 'outcome'>;
}

/**
 * The ThingsBoard beat: an MQTT client of ThingsBoard's MQTT transport, speaking the gateway or the
 * device API. What ThingsBoard (or a gateway on the same transport) sends becomes records on
 * `beats/things/<device>/<attributes|telemetry|rpc|connect|disconnect|claim>`; MQTT clients of
 * mqprobe answer RPC requests and ask for attributes through `beats/things/rpc/<device>/...`.
 * It connects once per start: a refused or lost connection goes back to the frame, which restarts
 * the beat with doubling delays.
 */
export class ThingsBridge implements Bridge {
  private client?: MqttClient;
  private ctx?: BridgeContext;
  private metrics?: ThingsMetrics;
  private stopping = false;
  /** Records leave in the order their messages came. */
  private chain: Promise<void> = Promise.resolve();
  private readonly pending = new PendingRequests();
  private nextRequestId = 1;
  private problemWindow = { start: 0, logged: 0 };

  constructor(
    private readonly cfg: ThingsConfig,
    private readonly common: CommonBeatConfig,
  ) {}

  async start(ctx: BridgeContext): Promise<void> {
    this.ctx = ctx;
    this.metrics = {
      messages: counter(ctx.metrics, 'mqprobe_beat_things_messages_total', 'Messages received from ThingsBoard.', ['beat']),
      rejected: counter(
        ctx.metrics,
        'mqprobe_beat_things_rejected_total',
        'ThingsBoard messages or message entries refused as malformed.',
        ['beat'],
      ),
      commands: counter(
        ctx.metrics,
        'mqprobe_beat_things_commands_total',
        'Commands from mqprobe clients (RPC replies, attribute requests) by outcome.',
        ['beat', 'outcome'],
      ),
    };
    const client = mqtt.connect(this.cfg.url!.toString(), await this.options());
    this.client = client;
    await this.connected(client);
    client.on('message', (topic, payload) => this.received(topic, payload));
    client.on('close', () => {
      if (!this.stopping) ctx.fail(new Error(`connection to ThingsBoard at ${this.where()} lost`));
    });
    await this.subscribeUpstream(client);
    await ctx.subscribe(`${this.common.topicPrefix}/rpc/#`, (topic, payload) => this.command(topic, payload));
    ctx.log.info(`connected to ThingsBoard at ${this.where()} as ${this.cfg.mode === 'gateway' ? 'gateway' : `device ${this.cfg.device}`}`);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const client = this.client;
    if (client) await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    await this.chain;
  }

  private where(): string {
    const u = this.cfg.url!;
    return `${u.protocol}//${u.host}`;
  }

  private async options(): Promise<IClientOptions> {
    const c = this.cfg;
    const o: IClientOptions = {
      clientId: c.clientId ?? `mqprobe-things-${randomBytes(6).toString('hex')}`,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
      keepalive: 60,
    };
    if (c.tokenFile) o.username = await readSecretFile(c.tokenFile, 'things_token_file');
    else if (c.username) {
      o.username = c.username;
      if (c.passwordFile) o.password = await readSecretFile(c.passwordFile, 'things_password_file');
    }
    if (c.cafile) o.ca = await readFile(c.cafile);
    if (c.certfile && c.keyfile) {
      o.cert = await readFile(c.certfile);
      o.key = await readFile(c.keyfile);
    }
    return o;
  }

  /** Resolves on CONNACK; rejects with a sentence naming what was refused and which key to check. */
  private connected(client: MqttClient): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error & { code?: string | number }) => {
        client.end(true);
        reject(new Error(this.refusal(err)));
      };
      client.once('error', onError);
      client.once('close', () => reject(new Error(`ThingsBoard at ${this.where()} closed the connection before accepting it`)));
      client.once('connect', () => {
        client.off('error', onError);
        client.on('error', (err) => this.ctx?.log.warn({ err: err.message }, `ThingsBoard connection: ${err.message}`));
        resolve();
      });
    });
  }

  private refusal(err: Error & { code?: string | number }): string {
    const reason = typeof err.code === 'number' ? CONNACK_REASONS[err.code] : undefined;
    if (!reason) return `cannot connect to ThingsBoard at ${this.where()}: ${err.code ?? err.message}`;
    const creds = this.cfg.tokenFile
      ? `the access token in things_token_file ${this.cfg.tokenFile}`
      : this.cfg.username
        ? `things_username / things_password_file`
        : 'the client certificate';
    const check = err.code === 4 || err.code === 5 ? `; check ${creds}` : '';
    return `ThingsBoard at ${this.where()} refused the connection: ${reason} (CONNACK ${err.code})${check}`;
  }

  private async subscribeUpstream(client: MqttClient): Promise<void> {
    const topics = this.cfg.mode === 'gateway' ? GATEWAY_TOPICS : DEVICE_TOPICS;
    const granted = await client.subscribeAsync([...topics], { qos: this.cfg.qos });
    // ThingsBoard offers a gateway only some of these topics; a refused one is noted, not fatal
    const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
    if (refused.length > 0) this.ctx!.log.info({ topics: refused }, `ThingsBoard refused subscriptions to ${refused.join(', ')}`);
  }

  private received(topic: string, payload: Buffer): void {
    try {
      this.map(topic, payload);
    } catch (err) {
      // whatever a message does to the mapping costs that message, never the connection
      this.problem(`${topic}: message could not be mapped (${(err as Error).message})`);
    }
  }

  private map(topic: string, payload: Buffer): void {
    const ctx = this.ctx!;
    this.metrics!.messages.inc({ beat: ctx.name });
    const parsed: Parsed =
      this.cfg.mode === 'gateway'
        ? parseGatewayMessage(topic, payload, (device, id) => this.pending.attributeKeys(device, id))
        : parseDeviceMessage(topic, payload, this.cfg.device!);
    for (const p of parsed.problems) this.problem(p);
    const events = parsed.events.filter((e) => !this.isOwnReplyEcho(e));
    for (const e of events) {
      this.pending.seen(e.device);
      if (e.kind === 'rpc' && e.data.direction === 'request') this.pending.rpcRequested(e.device, e.data.id as number);
    }
    if (events.length === 0) return;
    this.chain = this.chain.then(() => this.emitAll(events));
  }

  /** A reply this beat sent, coming back on a transport that echoes to its publisher (Mosquitto does). */
  private isOwnReplyEcho(e: ThingsEvent): boolean {
    return e.kind === 'rpc' && e.data.direction === 'response' && this.pending.takeOwnReply(e.device, e.data.id as number);
  }

  private async emitAll(events: ThingsEvent[]): Promise<void> {
    const ctx = this.ctx!;
    for (const e of events) {
      try {
        await ctx.emit({
          subtopic: `${deviceLevel(e.device)}/${e.kind}`,
          data: e.data,
          entity: { type: 'Device', id: e.device },
          ngsi: (format) => toNgsiEntity(format, { type: 'Device', id: e.device, attributes: e.attributes, time: e.time }),
          time: e.time,
        });
      } catch (err) {
        if (!this.stopping)
          ctx.log.warn({ err: (err as Error).message }, `cannot emit ${e.kind} of device ${e.device}: ${(err as Error).message}`);
      }
    }
  }

  private problem(text: string): void {
    const ctx = this.ctx!;
    this.metrics!.rejected.inc({ beat: ctx.name });
    const now = Date.now();
    if (now - this.problemWindow.start > PROBLEM_LOG.windowMs) this.problemWindow = { start: now, logged: 0 };
    if (this.problemWindow.logged++ < PROBLEM_LOG.max) ctx.log.warn(`refused ThingsBoard input: ${text}`);
  }

  /** A command published by an MQTT client of mqprobe under `<prefix>/rpc/`. */
  private command(topic: string, payload: Buffer): void {
    const result = parseCommand(topic.slice(this.common.topicPrefix.length + '/rpc/'.length), payload);
    if ('error' in result) return this.commandDone('refused', `command on ${topic} refused: ${result.error}`);
    void this.send(result).then(
      (note) => (note ? this.commandDone('refused', `command on ${topic} refused: ${note}`) : this.commandDone('sent')),
      (err: Error) => this.commandDone('failed', `command on ${topic} not delivered to ThingsBoard: ${err.message}`),
    );
  }

  private commandDone(outcome: 'sent' | 'refused' | 'failed', warning?: string): void {
    const ctx = this.ctx!;
    this.metrics!.commands.inc({ beat: ctx.name, outcome });
    if (warning) ctx.log.warn(warning);
  }

  /** Sends a command upstream; resolves with a reason when it is refused. */
  private async send(cmd: Command): Promise<string | undefined> {
    const client = this.client!;
    const qos = this.cfg.qos;
    if (cmd.kind === 'rpc-reply') {
      const device = this.pending.rpcReplying(cmd.deviceLevel, cmd.id);
      if (device === undefined) return `no pending RPC request ${cmd.id} for device level "${cmd.deviceLevel}"`;
      if (this.cfg.mode === 'gateway')
        await client.publishAsync('v1/gateway/rpc', JSON.stringify({ device, id: cmd.id, data: cmd.result }), { qos });
      else await client.publishAsync(`v1/devices/me/rpc/response/${cmd.id}`, JSON.stringify(cmd.result), { qos });
      return undefined;
    }
    const device = this.cfg.mode === 'device' ? this.cfg.device! : (this.pending.deviceNamed(cmd.deviceLevel) ?? cmd.deviceLevel);
    if (this.cfg.mode === 'device') {
      if (cmd.deviceLevel !== deviceLevel(device)) return `this beat speaks for device "${device}" only`;
      const id = this.nextRequestId++;
      await client.publishAsync(
        `v1/devices/me/attributes/request/${id}`,
        JSON.stringify({ clientKeys: cmd.client.join(','), sharedKeys: cmd.shared.join(',') }),
        { qos },
      );
      return undefined;
    }
    for (const [scope, keys] of [
      ['client', cmd.client],
      ['shared', cmd.shared],
    ] as const) {
      if (keys.length === 0) continue;
      const id = this.nextRequestId++;
      this.pending.attributesRequested(device, id, keys);
      const request =
        keys.length === 1 ? { id, device, client: scope === 'client', key: keys[0] } : { id, device, client: scope === 'client', keys };
      await client.publishAsync('v1/gateway/attributes/request', JSON.stringify(request), { qos });
    }
    return undefined;
  }
}
