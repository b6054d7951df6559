import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Registry, Histogram, collectDefaultMetrics } from 'prom-client';
import type { FastifyInstance } from 'fastify';
import type { BrokerConfig } from './config/types.js';
import type { AddressInfo, Socket } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { BrokerProbe, connInfo, tagConnection, type ConnInfo } from './probe.js';
import { Access, clientMeta } from './engine/access.js';
import { bindListener, type BoundListener } from './listeners.js';
import { createHttpServer } from './http/server.js';
import { HttpAuth } from './http-auth.js';
import { mountView } from './http/view/mount.js';
import { ViewModel } from './http/view/model.js';
import { limitPacketSize } from './engine/packet-limit.js';
import { readInTurns } from './engine/fair-reads.js';
import { batchWrites } from './engine/write-batching.js';
import { requireWellFormedStrings } from './engine/well-formed-strings.js';
import { requirePacketRules } from './engine/packet-rules.js';
import { BrokerStats } from './engine/stats.js';
import { applyDeliveryLimits, DEFAULT_SLOW_READER_BYTES } from './engine/delivery-limits.js';
import { QueuedBudget } from './engine/queued-budget.js';
import { collectAfterLargePackets, LARGE_PAYLOAD_BYTES } from './engine/large-packets.js';
import { assembleLargeBodies } from './engine/large-bodies.js';
import { startSysTopics } from './engine/sys-topics.js';
import { createBrokerState } from './persistence/index.js';
import { VERSION } from './version.js';
import { newListener } from './config/load.js';
import { createBrokerApi, type BrokerApi, type InternalConnectOptions } from './engine/api.js';
import type { ClientHandle } from './engine/client.js';
import { createEngine, type Engine } from './engine/engine.js';
import { watchClients } from './engine/disconnects.js';
import { countSharedSubscriptions, countSubscriptions, offlineSessions } from './engine/sessions.js';
import { logClientLines } from './engine/client-lines.js';
import { mqtt5Options } from './engine/mqtt5-options.js';
import { ConnectionGate } from './connection-gate.js';
import { listenLines } from './log/broker-lines.js';
import { logDestinations, mosquittoLineWriter } from './logger.js';
import { createBridges } from './bridge/index.js';
import { StatusRegistry } from './status.js';
import type { BridgeConfig } from './bridge/config.js';

/** In-process connections belong to no network listener: no mount point, limit or per-listener security. */
const INTERNAL_LISTENER = newListener(0, { file: '<internal>', line: 0 });

export interface BrokerInfo {
  name: string;
  id: string;
  version: string;
}

/**
 * The MQTT server alone: engine, listeners, access control, persistence, $SYS and the HTTP side-server.
 * It knows nothing of the areas built on it; app/assemble.ts attaches them between its start phases:
 * create → (capture, beats' routes) → bindListeners → start → … → stopAccepting → close.
 */
export interface MqttServer {
  /** The engine itself, for tests only: the areas above use `broker`. */
  aedes: Engine;
  /** The typed broker API the areas above use (events, publish, subscribe, internal connections). */
  broker: BrokerApi;
  config: BrokerConfig;
  log: Logger;
  probe: BrokerProbe;
  metrics: Registry;
  /** Where beats and bridges report their state, records and last error (the web view's Health tab). */
  status: StatusRegistry;
  info: BrokerInfo;
  /** The `http_listener` instance (routes may be added until start()). */
  http?: FastifyInstance;
  /** Who an HTTP request is (broker users, tokens, anonymous) and what its ACL lets it read. */
  httpAuth?: HttpAuth;
  /** Bound ports, in listener order (a config port 0 binds a free port); filled by bindListeners(). */
  readonly ports: number[];
  readonly httpPort?: number;
  /** True from stopAccepting() on. */
  readonly closing: boolean;
  /** Hands an in-process stream to the broker as a trusted internal connection (client ids starting with `$`). */
  connectInternal(stream: Duplex, opts?: InternalConnectOptions): void;
  /** Publishes a QoS 0 message from the broker itself; dropped once the broker is closing. */
  publish(topic: string, payload: string): void;
  /** Binds every configured listener; on failure closes what it bound and the engine, and rejects. */
  bindListeners(): Promise<void>;
  /** Opens the HTTP listener, starts $SYS and announces broker-starting. */
  start(): Promise<void>;
  /** Re-reads password and ACL files (SIGHUP). */
  reload(): Promise<void>;
  /** SIGHUP: applies the re-read `connection` blocks; throws (changing nothing) when a TLS file cannot be read. */
  reloadBridges(configs: BridgeConfig[]): Promise<void>;
  /** First step of closing: stops $SYS and accepting connections; connected clients stay. */
  stopAccepting(): void;
  /** Disconnects clients, flushes state, closes listeners and HTTP. */
  close(): Promise<void>;
  /** The last broker event of the instance (`broker-stopped`); the areas above say what they still had first. */
  announceStopped(): void;
}

/** The Prometheus registry of /metrics, with the process metrics; made first so every area can register on it. */
export function createMetricsRegistry(): Registry {
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics, prefix: 'mqprobe_process_' });
  return metrics;
}

export interface ServerOptions {
  log: Logger;
  metrics: Registry;
}

export async function createMqttServer(config: BrokerConfig, { log, metrics }: ServerOptions): Promise<MqttServer> {
  const probe = new BrokerProbe();
  const access = new Access(config, probe, { info: (line) => log.info(line), error: (line) => log.error(line) });
  for (const line of await access.load()) log.error(line);

  let closing = false;
  // token files are read before anything starts: a bad one stops the start with nothing to clean up
  const httpAuth = config.http
    ? new HttpAuth(config.httpAuth ?? {}, config.sse?.tokenFile, access, config, log.child({ name: 'http' }), metrics, probe)
    : undefined;
  await httpAuth?.load();
  const saveSeconds = new Histogram({
    name: 'mqprobe_persistence_save_seconds',
    help: 'Time to write the persistence snapshot.',
    registers: [metrics],
    buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
  });
  const state = createBrokerState(config, log, saveSeconds, metrics);
  const aedes = await createEngine({
    ...state.aedesOptions,
    ...access.hooks(() => aedes), // called once clients connect, after aedes exists
    keepaliveLimit: config.maxKeepalive < 65535 ? config.maxKeepalive : 0,
    ...mqtt5Options(config),
    connectTimeout: config.connectTimeout * 1000,
  });
  await state.start();
  const stats = new BrokerStats(aedes, probe, metrics);
  const info = { name: hostname(), id: aedes.id, version: VERSION };

  const usernameOf = (c: ClientHandle) => clientMeta(c)?.username;
  watchClients(aedes, probe, { takenOver: access.takenOver, kicked: access.kicked }, () => closing);
  // Mosquitto's own log lines for connects, refusals, disconnects and subscriptions (broker/engine/client-lines.ts)
  logClientLines(aedes, probe, mosquittoLineWriter(log), {
    connectionMessages: config.connectionMessages,
    enabled: (type) => logDestinations(log)?.enabled(type) ?? true,
  });

  const deliveryLimits = {
    queuedBytes: config.maxQueuedBytes || DEFAULT_SLOW_READER_BYTES,
    budget: new QueuedBudget(config.globalMaxQueuedBytes),
    unacknowledged: config.maxQueuedMessages > 0 ? config.maxQueuedMessages + config.maxInflightMessages : 0,
    inflight: config.maxInflightMessages,
  };
  const onQueueFull = (qos: number) => stats.countQueueFullDrop(qos);
  const handle = (stream: Duplex, conn: ConnInfo, req?: IncomingMessage) => {
    const client = aedes.handle(stream);
    readInTurns(client);
    if (config.setTcpNodelay) batchWrites(stream);
    requireWellFormedStrings(client);
    requirePacketRules(client);
    access.guardUnsubscribes(client);
    if (config.maxPacketSize > 0) limitPacketSize(client, config.maxPacketSize);
    if (config.maxPacketSize === 0 || config.maxPacketSize >= LARGE_PAYLOAD_BYTES) {
      assembleLargeBodies(client, config.maxPacketSize);
      collectAfterLargePackets(client);
    }
    applyDeliveryLimits(client, deliveryLimits, onQueueFull);
    stats.track(client, stream, (req?.socket ?? stream) as Socket, `${conn.listener.bind ?? '*'}:${conn.listenerPort}`);
  };

  const bound: BoundListener[] = [];
  const gate = new ConnectionGate(config.globalMaxConnections);
  let httpPort: number | undefined;
  let stopSys = () => {};
  const http = httpAuth
    ? createHttpServer(log, metrics, httpAuth, () => ({
        ok: !closing,
        detail: { clients: aedes.connectedClients, uptime_s: Math.round(process.uptime()), bridges: bridges.states() },
      }))
    : undefined;

  const connectInternal = (stream: Duplex, opts: InternalConnectOptions = {}) => {
    tagConnection(stream, { listener: INTERNAL_LISTENER, listenerPort: 0, transport: 'internal', openedAt: Date.now() });
    const limits = opts.maxUnacknowledged === undefined ? deliveryLimits : { ...deliveryLimits, unacknowledged: opts.maxUnacknowledged };
    applyDeliveryLimits(aedes.handle(stream), limits, onQueueFull);
  };
  const broker = createBrokerApi({
    aedes,
    probe,
    connectInternal,
    connOf: connInfo,
    usernameOf,
    guardConnects: (g) => access.guardConnects(g),
  });
  const status = new StatusRegistry();
  const bridges = createBridges(config.bridges, { broker, maxInflight: config.maxInflightMessages, probe, log, metrics, status });
  // the web view at / (docs/webview.md)
  const view =
    http && httpAuth ? mountView(http, httpAuth, new ViewModel(broker, metrics, status), log.child({ name: 'view' })) : undefined;

  let closed: Promise<void> | undefined;
  return {
    aedes,
    broker,
    config,
    log,
    probe,
    metrics,
    status,
    info,
    http,
    httpAuth,
    get ports() {
      return bound.map((b) => b.port);
    },
    get httpPort() {
      return httpPort;
    },
    get closing() {
      return closing;
    },
    connectInternal,
    publish(topic, payload) {
      if (!closing)
        aedes.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false }, () => undefined);
    },
    async bindListeners() {
      try {
        for (const l of config.listeners) {
          const b = await bindListener(l, handle, probe, log, { noDelay: config.setTcpNodelay, gate }).catch(
            (err: NodeJS.ErrnoException) => {
              if (!l.optional || !['EADDRNOTAVAIL', 'EAFNOSUPPORT'].includes(err.code ?? '')) throw err;
              log.warn(`not listening on ${l.bind}:${l.port}: ${err.message}`);
            },
          );
          if (b) bound.push(b);
        }
      } catch (err) {
        await Promise.all(bound.map((b) => b.close()));
        await new Promise<void>((r) => aedes.close(() => r()));
        throw err;
      }
      for (const b of bound) {
        const where = `${b.config.bind ?? '*'}:${b.port}`;
        for (const text of listenLines(b))
          log.info({ log_type: 'information', listener: where, protocol: b.config.protocol, tls: !!b.config.tls.certfile }, text);
      }
    },
    async start() {
      if (http && config.http && httpAuth) {
        // no address: every IPv4 interface, as before (Fastify's own default would be localhost; Mosquitto's `listener PORT` adds IPv6: docs/security.md)
        await http.listen({ port: config.http.port, host: config.http.bind ?? '0.0.0.0' });
        httpPort = (http.server.address() as { port: number }).port;
        log.info(await describeHttpListener(http, httpAuth));
      }
      stopSys = startSysTopics(
        aedes,
        stats,
        {
          retained: state.counts.retained,
          retainedBytes: state.counts.retainedBytes,
          subscriptions: async () => countSubscriptions(aedes),
          sharedSubscriptions: async () => countSharedSubscriptions(aedes),
          offlineClients: async () => offlineSessions(aedes, await state.counts.sessions()),
        },
        VERSION,
        config.sysInterval,
      );
      probe.emit(
        'broker-starting',
        bound.map((b) => ({ listener: b.config, port: b.port })),
      );
      bridges.start();
    },
    reload: async () => {
      try {
        const skipped = await access.load();
        log.info('reloaded password and ACL files');
        for (const line of skipped) log.error(line);
      } catch (err) {
        log.error({ err: (err as Error).message }, 'reload failed; keeping the previous password and ACL files');
      }

      // after the ACL: it also forgets the HTTP clients' cached read decisions
      await httpAuth?.load().then(
        () => log.info('reloaded the HTTP token files'),
        (err: Error) => log.error({ err: err.message }, 'reload failed; keeping the previous HTTP token files'),
      );
    },
    reloadBridges: (configs) => bridges.reload(configs),
    stopAccepting() {
      closing = true;
      stopSys();
      for (const b of bound) b.stopAccepting();
    },
    close() {
      closed ??= (async () => {
        await bridges.stop();
        await new Promise<void>((r) => aedes.close(() => r()));
        await state.stop();
        await Promise.all(bound.map((b) => b.close()));
        view?.close();
        if (http) await http.close();
      })();
      return closed;
    },
    announceStopped() {
      httpAuth?.flushRefusals(); // refusals the rate limit held back are recorded before the last event
      probe.emit('broker-stopped');
    },
  };
}

/** The addresses the HTTP listener really bound, and whether it serves requests without credentials. */
async function describeHttpListener(http: FastifyInstance, auth: HttpAuth): Promise<string> {
  // Fastify binds a name such as localhost on each of its addresses
  const bound = http.addresses().filter((a): a is AddressInfo => typeof a === 'object');
  const where = bound.map((a) => (a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`));
  const all = bound.some((a) => a.address === '0.0.0.0' || a.address === '::');
  const anonymous = (await auth.anonymousAllowed())
    ? 'anonymous clients allowed (allow_anonymous), under the anonymous ACL'
    : 'clients must log in (Basic or Bearer)';
  return `http listener on ${where.join(', ')}${all ? ' (every interface)' : ''}: ${anonymous}`;
}
