import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import type { Teardown } from './broker.js';

/** Connects mqtt.js and resolves on CONNACK; rejects with the broker's refusal. Ended in teardown. */
export async function connectClient(
  t: Teardown,
  url: string,
  opts: IClientOptions = {},
  beforeConnect?: (client: MqttClient) => void,
): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  beforeConnect?.(client);
  t.teardown(() => client.end(true));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
    client.once('close', () => reject(new Error('connection closed before CONNACK')));
  });
  return client;
}

/**
 * Connects and collects from the first packet on: a resumed session's queued messages can arrive
 * in the same read as the CONNACK, before a listener added after `await connectClient` exists.
 */
export async function connectCollecting(
  t: Teardown,
  url: string,
  opts: IClientOptions = {},
): Promise<{ client: MqttClient; got: ReturnType<typeof collect> }> {
  let got: ReturnType<typeof collect> = [];
  const client = await connectClient(t, url, opts, (c) => (got = collect(c)));
  return { client, got };
}

/** Collects messages on a client into an array. */
export function collect(client: MqttClient): { topic: string; payload: Buffer; retain: boolean; qos: number }[] {
  const got: { topic: string; payload: Buffer; retain: boolean; qos: number }[] = [];
  client.on('message', (topic, payload, packet) => got.push({ topic, payload, retain: packet.retain, qos: packet.qos }));
  return got;
}

/** Polls until the condition holds (for asynchronous deliveries). */
export async function until(cond: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
