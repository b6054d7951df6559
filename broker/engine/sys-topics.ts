import type { Aedes } from './vendor/aedes/aedes.js';
import type { BrokerStats } from './stats.js';

/** Mosquitto's load averages: per-minute rates smoothed over 1, 5 and 15 minutes. */
class Load {
  private last = 0;
  readonly avg = { '1min': 0, '5min': 0, '15min': 0 };
  private started = false;

  update(total: number, intervalS: number): void {
    const perMinute = this.started ? ((total - this.last) * 60) / intervalS : 0;
    this.last = total;
    if (!this.started) {
      this.started = true;
      return;
    }
    for (const [k, window] of [
      ['1min', 60],
      ['5min', 300],
      ['15min', 900],
    ] as const) {
      const f = Math.exp(-intervalS / window);
      this.avg[k] = this.avg[k] * f + perMinute * (1 - f);
    }
  }
}

export interface SysCounts {
  retained: () => Promise<number>;
  /** Payload bytes of the retained messages. */
  retainedBytes: () => Promise<number>;
  subscriptions: () => Promise<number>;
  sharedSubscriptions: () => Promise<number>;
  offlineClients: () => Promise<number>;
}

/**
 * Publishes `$SYS/broker/...` with Mosquitto 2.0's names and meanings every sys_interval,
 * retained, as Mosquitto does.
 */
export function startSysTopics(aedes: Aedes, stats: BrokerStats, counts: SysCounts, version: string, intervalS: number): () => void {
  if (intervalS <= 0) return () => undefined;
  const loads: Record<string, [Load, () => number]> = {
    'load/messages/received': [new Load(), () => stats.messagesReceived],
    'load/messages/sent': [new Load(), () => stats.messagesSent],
    'load/publish/received': [new Load(), () => stats.publishReceived],
    'load/publish/sent': [new Load(), () => stats.publishSent],
    'load/publish/dropped': [new Load(), () => stats.publishDropped],
    'load/bytes/received': [new Load(), () => stats.bytesReceived()],
    'load/bytes/sent': [new Load(), () => stats.bytesSent()],
    'load/connections': [new Load(), () => stats.connectionsTotal],
    'load/sockets': [new Load(), () => stats.socketsTotal],
  };
  const publish = (topic: string, value: string | number) =>
    aedes.publish(
      { cmd: 'publish', topic: `$SYS/broker/${topic}`, payload: Buffer.from(String(value)), qos: 0, retain: true, dup: false },
      () => undefined,
    );

  publish('version', `mqprobe version ${version}`);
  let heapMaximum = 0;
  // sessions ended by their expiry (MQTT 5, or persistent_client_expiration for 3.1.1), as Mosquitto counts them
  let expired = 0;
  const countExpired = () => void expired++;
  aedes.on('sessionExpired', countExpired);
  const tick = async () => {
    const connected = aedes.connectedClients;
    const disconnected = await counts.offlineClients();
    publish('uptime', `${Math.round((Date.now() - stats.startedAt) / 1000)} seconds`);
    publish('clients/connected', connected);
    publish('clients/active', connected);
    publish('clients/disconnected', disconnected);
    publish('clients/inactive', disconnected);
    publish('clients/total', connected + disconnected);
    publish('clients/maximum', stats.clientsMaximum);
    publish('messages/received', stats.messagesReceived);
    publish('messages/sent', stats.messagesSent);
    publish('publish/messages/received', stats.publishReceived);
    publish('publish/messages/sent', stats.publishSent);
    publish('publish/messages/dropped', stats.publishDropped);
    publish('publish/bytes/received', stats.publishBytesReceived);
    publish('publish/bytes/sent', stats.publishBytesSent);
    publish('bytes/received', stats.bytesReceived());
    publish('bytes/sent', stats.bytesSent());
    const retained = await counts.retained();
    publish('retained messages/count', retained);
    publish('messages/stored', retained);
    publish('store/messages/count', retained);
    // Mosquitto's message store holds retained and queued messages; mqprobe's counts are the retained ones
    publish('store/messages/bytes', await counts.retainedBytes());
    publish('subscriptions/count', await counts.subscriptions());
    publish('shared_subscriptions/count', await counts.sharedSubscriptions());
    const heap = process.memoryUsage().heapUsed;
    heapMaximum = Math.max(heapMaximum, heap);
    publish('heap/current', heap);
    publish('heap/maximum', heapMaximum);
    publish('clients/expired', expired);
    for (const [topic, [load, read]] of Object.entries(loads)) {
      load.update(read(), intervalS);
      for (const [window, v] of Object.entries(load.avg)) publish(`${topic}/${window}`, v.toFixed(2));
    }
  };
  const timer = setInterval(() => void tick(), intervalS * 1000);
  timer.unref();
  void tick();
  return () => {
    clearInterval(timer);
    aedes.off('sessionExpired', countExpired);
  };
}
