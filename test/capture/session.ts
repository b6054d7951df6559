/** A scripted MQTT session that makes the broker produce every default capture action, and readers for what capture wrote. */
import net from 'node:net';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { connectClient, until } from '../helpers/mqtt.js';
import { fixture } from '../helpers/paths.js';
import type { Teardown } from '../helpers/broker.js';

export const PASSWORDS = passwordsOf(readFileSync(fixture('mosquitto', 'PASSWORDS.md'), 'utf8'));

/** The clear-text passwords listed in PASSWORDS.md (`- user: \`password\``). */
function passwordsOf(md: string): string[] {
  const out = [...md.matchAll(/^\s*- [\w-]+: `([^`]+)`/gm)].map((m) => m[1]);
  if (out.length < 4) throw new Error('PASSWORDS.md: fewer passwords than expected');
  return out;
}

/** Broker config lines for fixture users, an ACL that denies alice `secret/#`. */
export function securityConf(dir: string): string {
  const acl = join(dir, 'acl');
  writeFileSync(acl, 'user alice\ntopic readwrite sensors/#\ntopic read will/#\n\nuser bob\ntopic readwrite will/#\n');
  return `password_file ${fixture('mosquitto', 'passwd')}\nacl_file ${acl}\n`;
}

/** Raw bytes to the broker on a fresh socket; resolves when the broker closes it. */
export function rawSession(port: number, chunks: Buffer[], holdMs = 0): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', async () => {
      for (const c of chunks) s.write(c);
      if (holdMs) setTimeout(() => s.destroy(), holdMs);
    });
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => resolve());
  });
}

export const connectPacket = (clientId: string, extra: Record<string, unknown> = {}) =>
  mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId,
    keepalive: 0,
    ...extra,
  } as mqttPacket.IConnectPacket);

/**
 * alice: connect, subscribe (granted + denied), publish (allowed, QoS 1, retained, denied),
 * unsubscribe, disconnect; bob with a wrong password; an unknown user; a client with a will whose
 * socket dies; a malformed packet; a keepalive timeout.
 */
export async function scriptedSession(t: Teardown, url: string, port: number): Promise<void> {
  const alice = await connectClient(t, url, { clientId: 'alice-1', username: 'alice', password: 'alice-secret', keepalive: 30 });
  await alice.subscribeAsync('sensors/#', { qos: 1 });
  await alice.subscribeAsync('secret/#', { qos: 0 }).catch(() => undefined);
  await alice.publishAsync('sensors/t1', '21.5', { qos: 1 });
  await alice.publishAsync('sensors/retained', Buffer.from([0, 1, 2, 255]), { qos: 0, retain: true });
  await alice.publishAsync('secret/x', 'nope', { qos: 1 });
  await alice.unsubscribeAsync('sensors/#');
  await alice.endAsync();

  for (const [user, password] of [
    ['bob', 'wrong password'],
    ['mallory', 'alice-secret'],
    ['sensor-01', 'Tr1cky:$pass/word-nope'],
  ]) {
    const c = mqtt.connect(url, { clientId: `c-${user}`, username: user, password, reconnectPeriod: 0 });
    await new Promise<void>((r) => {
      c.once('error', () => r());
      c.once('close', () => r());
    });
    c.end(true);
  }

  // a will: bob connects with one, his socket dies without DISCONNECT
  const bob = await connectClient(t, url, {
    clientId: 'bob-1',
    username: 'bob',
    password: 'b0b pass with spaces',
    will: { topic: 'will/bob', payload: Buffer.from('bob gone'), qos: 0, retain: false },
  });
  (bob as unknown as { stream: net.Socket }).stream.destroy();
  await until(() => bob.connected === false, 5000, 'bob to be gone');

  // a malformed packet (reserved packet type 0) after a valid CONNECT: protocol-error
  await rawSession(
    port,
    [connectPacket('raw-bad', { username: 'alice', password: Buffer.from('alice-secret') }), Buffer.from([0x00, 0x00])],
    2000,
  );
  // keepalive 1 s and then silence: the broker drops it after 1.5 s
  await rawSession(port, [connectPacket('sleepy', { keepalive: 1, username: 'alice', password: Buffer.from('alice-secret') })], 5000);
}

/** Parsed capture lines of a file (each must be JSON). */
export function readEvents(path: string): Record<string, any>[] {
  // the file sink creates its file with its first write: none yet is no event yet
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, any>);
}
