import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { FastifyInstance } from 'fastify';
import { createMetricsRegistry, createMqttServer, type BrokerInfo, type MqttServer } from '../broker/server.js';
import type { BrokerProbe } from '../broker/probe.js';
import type { BrokerApi } from '../broker/engine/api.js';
import { attachBeats } from '../bridges/index.js';
import { createKafkaBridges } from '../bridges/kafka/index.js';
import { startCapture, type Capture } from '../capture/index.js';
import { captureSysFigures } from '../capture/sys.js';
import { publishSysFigures } from '../broker/sys-figures.js';
import { createDetection, IndicatorExchange } from '../detect/index.js';
import { startResponses } from '../detect/response/start.js';
import { loadConfig, type AppConfig } from './config.js';

/** The broker with everything mqprobe builds on it: capture, detection, beats and their HTTP routes. */
export interface RunningBroker {
  /** The engine itself, for tests only. */
  aedes: MqttServer['aedes'];
  /** The typed broker API. */
  broker: BrokerApi;
  config: AppConfig;
  log: Logger;
  probe: BrokerProbe;
  metrics: Registry;
  http?: FastifyInstance;
  /** Bound ports, in listener order (a config port 0 binds a free port). */
  ports: number[];
  httpPort?: number;
  info: BrokerInfo;
  /** The capture pipeline (detection subscribes to it and emits alerts through it). */
  capture: Capture;
  /** Hands an in-process stream to the broker as a trusted internal connection (client ids starting with `$`). */
  connectInternal: MqttServer['connectInternal'];
  /** SIGHUP: re-reads password, ACL and HTTP token files, and the config file's `connection` blocks. */
  reload(): Promise<void>;
  /** Stops accepting, disconnects clients, flushes state. Idempotent. */
  close(): Promise<void>;
}

export interface StartOptions {
  log: Logger;
}

export async function startBroker(config: AppConfig, opts: StartOptions): Promise<RunningBroker> {
  const log = opts.log;
  const metrics = createMetricsRegistry();
  const intel = new IndicatorExchange();
  let server: MqttServer | undefined;
  let capture: Capture | undefined; // eslint-disable-line prefer-const -- assigned after detection, which needs it
  let responses: Awaited<ReturnType<typeof startResponses>>;
  // before anything starts: a bad detect_rule is a config error; alerts go through capture and onto $SYS/broker/alerts/<rule>
  const detection = createDetection(config.detect, {
    raise: (alert) => {
      const recorded = capture!.emit(alert);
      responses?.onAlert(alert);
      return recorded;
    },
    publish: (topic, payload) => server?.publish(topic, payload),
    log,
    metrics,
    indicators: intel,
  });
  try {
    server = await createMqttServer(config, { log, metrics });
  } catch (err) {
    detection.stop();
    throw err;
  }
  const { aedes, probe, info } = server;

  // before the listeners open, so the first connection and broker-starting are captured
  capture = startCapture({ broker: server.broker, log, metrics, config: config.capture, info });
  if (config.detect.enabled) capture.subscribe(detection.observe, detection.observeNotice);
  // the sinks exist (a capture file is there to tail) before the first client connects
  await capture.ready();

  try {
    // bans in force refuse from the first connection on (docs/detection.md, Responses)
    responses = await startResponses(config, {
      broker: server.broker,
      http: server.http,
      httpAuth: server.httpAuth,
      capture,
      rules: detection.rules,
      log,
    });
    await server.bindListeners();
  } catch (err) {
    detection.stop();
    await responses?.stop();
    await capture.stop();
    throw err;
  }
  // before the HTTP listener listens: /sse and the beats' routes are registered on it here
  const beats = attachBeats(
    {
      broker: server.broker,
      log,
      metrics,
      http: server.http,
      redisUrl: config.persistenceRedisUrl,
      intel,
      stateDir: config.persistenceLocation,
      sse: config.sse,
      httpAuth: server.httpAuth,
      status: server.status,
    },
    config.beats,
  );
  const kafkaBridges = createKafkaBridges(config.kafkaBridges, {
    broker: server.broker,
    log,
    metrics,
    status: server.status,
    onState: (b) => probe.emit('kafka-bridge-state', { bridge: b.config.name, state: b.state, reason: b.reason }),
  });
  await server.start();
  await beats.start();
  kafkaBridges.start();
  // const copies of the two late-bound references, for the closures below
  const mqtt = server;
  const running = capture;
  const stopSysFigures = publishSysFigures(server.broker, config.sysInterval, () => [
    ...captureSysFigures(running.stats()),
    ...kafkaBridges.sysFigures(),
  ]);

  let closed: Promise<void> | undefined;
  return {
    aedes,
    broker: mqtt.broker,
    config,
    log,
    probe,
    metrics,
    http: mqtt.http,
    ports: mqtt.ports,
    httpPort: mqtt.httpPort,
    info,
    capture: running,
    connectInternal: mqtt.connectInternal,
    async reload() {
      await mqtt.reload();
      await reloadBridges(mqtt, config.file, log);
    },
    close() {
      closed ??= (async () => {
        mqtt.stopAccepting();
        stopSysFigures();
        // beats first: they finish and checkpoint what they have in hand while the broker still routes it
        await beats.stop();
        await kafkaBridges.stop();
        await mqtt.close();
        // detection's alert-summary events for alerts still held back come before broker-stopped, the last event
        detection.stop();
        await responses?.stop();
        mqtt.announceStopped();
        await running.stop();
        log.info('broker stopped');
      })();
      return closed;
    },
  };
}

/** SIGHUP: the config file's `connection` blocks, re-read; a file or TLS error keeps every bridge as it was. */
async function reloadBridges(mqtt: MqttServer, file: string | undefined, log: Logger): Promise<void> {
  try {
    await mqtt.reloadBridges(loadConfig(file).bridges);
  } catch (err) {
    log.error({ err: (err as Error).message }, 'reload failed; keeping the previous bridges');
  }
}
