import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import { Aedes, type Client } from 'aedes';
import type { Logger } from 'pino';
import { Registry, Histogram, collectDefaultMetrics } from 'prom-client';
import type { FastifyInstance } from 'fastify';
import type { BrokerConfig } from './config/types.js';
import type { Socket } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { BrokerProbe, connInfo, tagConnection, type ConnInfo } from './probe.js';
import { Access, clientMeta } from './access.js';
import { bindListener, type BoundListener } from './listeners.js';
import { createHttpServer } from './http.js';
import { limitPacketSize } from './packet-limit.js';
import { BrokerStats } from './stats.js';
import { applyDeliveryLimits, DEFAULT_SLOW_READER_BYTES } from './delivery-limits.js';
import { startSysTopics } from './sys-topics.js';
import { createBrokerState } from './persistence/index.js';
import { VERSION } from './version.js';
import { newListener } from './config/load.js';
import { logClientLines } from './log/client-lines.js';
import { ConnectionGate } from './connection-gate.js';
import { listenLines } from './log/broker-lines.js';
import { logDestinations } from './logger.js';
import { attachBeats } from '../bridges/index.js';
import { startCapture, type Capture } from '../capture/index.js';
import { createDetection } from '../capture/detect/index.js';

/** In-process connections belong to no network listener: no mount point, limit or per-listener security. */
const INTERNAL_LISTENER = newListener(0, { file: '<internal>', line: 0 });

export interface RunningBroker {
  aedes: Aedes;
  config: BrokerConfig;
  log: Logger;
  probe: BrokerProbe;
  metrics: Registry;
  http?: FastifyInstance;
  /** Bound ports, in listener order (a config port 0 binds a free port). */
  ports: number[];
  httpPort?: number;
  info: { name: string; id: string; version: string };
  /** The capture pipeline (detection subscribes to it and emits alerts through it). */
  capture: Capture;
  /** Hands an in-process stream to the broker as a trusted internal connection (client ids starting with `$`). */
  connectInternal(stream: Duplex): void;
  /** Re-reads password and ACL files (SIGHUP). */
  reload(): Promise<void>;
  /** Stops accepting, disconnects clients, flushes state. Idempotent. */
  close(): Promise<void>;
}

export interface StartOptions {
  log: Logger;
}

export async function startBroker(config: BrokerConfig, opts: StartOptions): Promise<RunningBroker> {
  const log = opts.log;
  const probe = new BrokerProbe();
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics, prefix: 'mqprobe_process_' });
  const access = new Access(config, probe);
  for (const line of await access.load()) log.error(line);

  const services = new Map<string, unknown>();
  let closing = false;
  // before anything starts: a bad detect_rule is a config error; alerts go through capture and onto $SYS/broker/alerts/<rule>
  const detection = createDetection(config.detect, {
    raise: (alert) => capture.emit(alert),
    publish: (topic, payload) => {
      if (!closing) aedesRef?.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false }, () => undefined);
    },
    log,
    metrics,
    services,
  });
  const saveSeconds = new Histogram({ name: 'mqprobe_persistence_save_seconds', help: 'Time to write the persistence snapshot.', registers: [metrics], buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30] });
  const state = createBrokerState(config, log, saveSeconds);
  let aedesRef: Aedes | undefined;
  const aedes = await Aedes.createBroker({
    ...state.aedesOptions,
    ...access.hooks(() => aedesRef!),
    keepaliveLimit: config.maxKeepalive < 65535 ? config.maxKeepalive : 0,
    connectTimeout: config.connectTimeout * 1000,
  });
  aedesRef = aedes;
  await state.start();
  const stats = new BrokerStats(aedes, probe, metrics);
  const info = { name: hostname(), id: aedes.id, version: VERSION };

  watchClients(aedes, probe, access, log, config, () => closing);
  // Mosquitto's own log lines for connects, refusals, disconnects and subscriptions (broker/log/client-lines.ts)
  logClientLines(aedes, probe, log, { connectionMessages: config.connectionMessages, enabled: (type) => logDestinations(log)?.enabled(type) ?? true });
  // before the listeners open, so the first connection and broker-starting are captured
  const capture = startCapture({ aedes, probe, log, metrics, config: config.capture, info, connOf: connInfo, usernameOf: (c) => clientMeta(c)?.username });
  if (config.detect.enabled) capture.subscribe(detection.observe);
  // the sinks exist (a capture file is there to tail) before the first client connects
  await capture.ready();

  const deliveryLimits = {
    queuedBytes: config.maxQueuedBytes || DEFAULT_SLOW_READER_BYTES,
    unacknowledged: config.maxQueuedMessages > 0 ? config.maxQueuedMessages + config.maxInflightMessages : 0,
  };
  const handle = (stream: Duplex, conn: ConnInfo, req?: IncomingMessage) => {
    const client = aedes.handle(stream);
    if (config.maxPacketSize > 0) limitPacketSize(client, config.maxPacketSize);
    applyDeliveryLimits(client, deliveryLimits, (qos) => stats.countQueueFullDrop(qos));
    stats.track(client, stream, (req?.socket ?? stream) as Socket, `${conn.listener.bind ?? '*'}:${conn.listenerPort}`);
  };

  const bound: BoundListener[] = [];
  const gate = new ConnectionGate(config.globalMaxConnections);
  try {
    for (const l of config.listeners) {
      const b = await bindListener(l, handle, probe, log, { noDelay: config.setTcpNodelay, gate }).catch((err: NodeJS.ErrnoException) => {
        if (!l.optional || !['EADDRNOTAVAIL', 'EAFNOSUPPORT'].includes(err.code ?? '')) throw err;
        log.warn(`not listening on ${l.bind}:${l.port}: ${err.message}`);
      });
      if (b) bound.push(b);
    }
  } catch (err) {
    await Promise.all(bound.map((b) => b.close()));
    await new Promise<void>((r) => aedes.close(() => r()));
    detection.stop();
    await capture.stop();
    throw err;
  }
  for (const b of bound) {
    const where = `${b.config.bind ?? '*'}:${b.port}`;
    for (const text of listenLines(b)) log.info({ log_type: 'information', listener: where, protocol: b.config.protocol, tls: !!b.config.tls.certfile }, text);
  }

  let http: FastifyInstance | undefined;
  let httpPort: number | undefined;
  const connectInternal = (stream: Duplex) => {
    tagConnection(stream, { listener: INTERNAL_LISTENER, listenerPort: 0, transport: 'internal', openedAt: Date.now() });
    applyDeliveryLimits(aedes.handle(stream), deliveryLimits, (qos) => stats.countQueueFullDrop(qos));
  };
  if (config.http) http = createHttpServer(log, metrics, () => ({ ok: !closing, detail: { clients: aedes.connectedClients, uptime_s: Math.round(process.uptime()) } }));
  // before the HTTP listener listens: /sse and the beats' routes are registered on it here
  const beats = attachBeats({ aedes, log, metrics, http, redisUrl: config.persistenceRedisUrl, services, connectInternal, stateDir: config.persistenceLocation, sse: config.sse }, config.beats);
  if (http && config.http) {
    await http.listen({ port: config.http.port, host: config.http.bind ?? '0.0.0.0' });
    httpPort = (http.server.address() as { port: number }).port;
    log.info(`http listener on ${config.http.bind ?? '0.0.0.0'}:${httpPort}`);
  }

  const stopSys = startSysTopics(
    aedes,
    stats,
    {
      retained: state.counts.retained,
      subscriptions: async () => countSubscriptions(aedes),
      offlineClients: async () => offlineSessions(aedes, await state.counts.sessions()),
    },
    VERSION,
    config.sysInterval,
  );

  probe.emit('broker-starting', bound.map((b) => ({ listener: b.config, port: b.port })));
  await beats.start();

  let closed: Promise<void> | undefined;
  const broker: RunningBroker = {
    aedes,
    config,
    log,
    probe,
    metrics,
    http,
    ports: bound.map((b) => b.port),
    httpPort,
    info,
    capture,
    connectInternal,
    reload: async () => {
      try {
        const skipped = await access.load();
        log.info('reloaded password and ACL files');
        for (const line of skipped) log.error(line);
      } catch (err) {
        log.error({ err: (err as Error).message }, 'reload failed; keeping the previous password and ACL files');
      }
    },
    close() {
      closed ??= (async () => {
        closing = true;
        stopSys();
        for (const b of bound) b.stopAccepting();
        // beats first: they finish and checkpoint what they have in hand while the broker still routes it
        await beats.stop();
        await new Promise<void>((r) => aedes.close(() => r()));
        await state.stop();
        await Promise.all(bound.map((b) => b.close()));
        if (http) await http.close();
        probe.emit('broker-stopped');
        detection.stop();
        await capture.stop();
        log.info('broker stopped');
      })();
      return closed;
    },
  };
  return broker;
}

/** Turns Aedes' client events into the probe's disconnect reasons and protocol errors (wills: access.ts). */
function watchClients(aedes: Aedes, probe: BrokerProbe, access: Access, log: Logger, config: BrokerConfig, closing: () => boolean): void {
  const keepaliveExpired = new WeakSet<Client>();
  const errored = new WeakMap<Client, Error>();
  aedes.on('keepaliveTimeout', (client) => keepaliveExpired.add(client));
  aedes.on('clientError', (client, err) => errored.set(client, err));
  aedes.on('connectionError', (client, err) => {
    // errors before CONNECT completed: malformed packets, CONNECT timeout, TLS/socket failures
    probe.emit('protocol-error', connInfo(client), client, err);
  });
  aedes.on('clientDisconnect', (client) => {
    const c = client as Client & { _disconnected?: boolean };
    const err = errored.get(client);
    const reason = c._disconnected
      ? 'client-disconnect'
      : keepaliveExpired.has(client)
        ? 'keepalive-timeout'
        : access.takenOver.has(client)
          ? 'session-taken-over'
          : closing()
            ? 'server-shutdown'
            : err
              ? 'error'
              : 'socket-closed';
    if (isParseError(err)) probe.emit('protocol-error', connInfo(client), client, err!);
    probe.emit('disconnect-reason', client, reason, err);
  });
}

type AedesClients = Record<string, Client & { subscriptions: Record<string, unknown> }>;
const clientsOf = (aedes: Aedes) => (aedes as unknown as { clients: AedesClients }).clients;

/** Subscriptions of connected clients (Mosquitto's subscriptions/count also includes offline sessions'). */
function countSubscriptions(aedes: Aedes): number {
  let n = 0;
  for (const c of Object.values(clientsOf(aedes))) n += Object.keys(c.subscriptions ?? {}).length;
  return n;
}

/** Persistent sessions whose client is not connected. */
function offlineSessions(aedes: Aedes, sessions: string[] | number): number {
  const clients = clientsOf(aedes);
  if (typeof sessions === 'number') return Math.max(0, sessions - Object.values(clients).filter((c) => !c.clean).length);
  return sessions.filter((id) => !clients[id]).length;
}

/** mqtt-packet and mqprobe's own packet checks report protocol violations as plain Errors; tell them from socket errors. */
function isParseError(err: Error | undefined): boolean {
  return !!err && !('code' in err) && !/keep alive timeout|closed|ECONNRESET|EPIPE/.test(err.message);
}
