/**
 * The same MQTT 5 round trip through real client libraries, for the engine evaluation: mqtt.js
 * (protocolVersion 5) and Mosquitto's own mosquitto_sub/mosquitto_pub -V mqttv5. A subscriber with a
 * subscription identifier receives a QoS 1 publish carrying a user property, a response topic and a
 * message expiry; the answer says what the subscriber saw.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import mqtt from 'mqtt';

const run = promisify(execFile);

/** `url` and `extra` (e.g. a CA) for another transport than plain TCP: ws://, mqtts://, wss://. */
export async function viaMqttJs(port: number, url = `mqtt://127.0.0.1:${port}`, extra: mqtt.IClientOptions = {}): Promise<string> {
  const opts = { protocolVersion: 5 as const, reconnectPeriod: 0, connectTimeout: 5000, ...extra };
  const sub = mqtt.connect(url, { ...opts, clientId: 'probe-js-sub' });
  const pub = mqtt.connect(url, { ...opts, clientId: 'probe-js-pub' });
  try {
    await Promise.all([sub, pub].map((c) => new Promise((resolve, reject) => (c.once('connect', resolve), c.once('error', reject)))));
    await sub.subscribeAsync('probe/js', { qos: 1, properties: { subscriptionIdentifier: 3 } });
    const got = new Promise<string>((resolve) =>
      sub.once('message', (_t, payload, p) => {
        const pr = p.properties ?? {};
        resolve(
          `qos=${p.qos} si=${JSON.stringify(pr.subscriptionIdentifier)} user=${JSON.stringify(pr.userProperties)} response=${pr.responseTopic} expiry=${pr.messageExpiryInterval} payload=${payload.toString()}`,
        );
      }),
    );
    await pub.publishAsync('probe/js', 'hi', {
      qos: 1,
      properties: { userProperties: { k: 'v' }, responseTopic: 'probe/js/re', messageExpiryInterval: 30 },
    });
    return await Promise.race([got, new Promise<string>((r) => setTimeout(() => r('nothing received'), 3000))]);
  } catch (err) {
    return `mqtt.js: ${(err as Error).message}`;
  } finally {
    sub.end(true);
    pub.end(true);
  }
}

export async function viaMosquittoTools(port: number): Promise<string> {
  const p = String(port);
  const sub = spawn('mosquitto_sub', [
    '-V',
    'mqttv5',
    '-p',
    p,
    '-h',
    '127.0.0.1',
    '-i',
    'probe-mt-sub',
    '-q',
    '1',
    '-t',
    'probe/mt',
    '-D',
    'subscribe',
    'subscription-identifier',
    '4',
    '-C',
    '1',
    '-W',
    '5',
    '-F',
    'qos=%q si=%S user=%P response=%R expiry=%E payload=%p',
  ]);
  let out = '';
  sub.stdout.on('data', (d) => (out += d));
  sub.stderr.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => sub.once('exit', () => r()));
  await new Promise((r) => setTimeout(r, 700));
  try {
    await run('mosquitto_pub', [
      '-V',
      'mqttv5',
      '-p',
      p,
      '-h',
      '127.0.0.1',
      '-i',
      'probe-mt-pub',
      '-q',
      '1',
      '-t',
      'probe/mt',
      '-m',
      'hi',
      '-D',
      'publish',
      'user-property',
      'k',
      'v',
      '-D',
      'publish',
      'response-topic',
      'probe/mt/re',
      '-D',
      'publish',
      'message-expiry-interval',
      '30',
    ]);
  } catch (err) {
    sub.kill();
    const e = err as { code?: number; stderr?: string };
    return `mosquitto_pub failed (exit ${e.code}): ${(e.stderr ?? '').trim().split('\n')[0]}`;
  }
  await exited;
  return out.trim() || 'nothing received';
}
