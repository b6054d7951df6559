import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { onSetup } from '../on-setup.js';
import { parseSessionExpiry, type ExpiringEngine, type SessionExpiry } from './session-expiry.js';

/** Hash of client id → JSON { interval, endedAt } for the MQTT 5 sessions whose expiry is counting. */
export const SESSION_EXPIRY_KEY = 'mqprobe:session-expiry';

/** The notice by which a process tells the others that a session's expiry started counting. */
const NOTICE = (brokerId: string) => `$SYS/${brokerId}/mqprobe/session-expiry`;

type Notice = { topic: string; payload: Buffer };
interface Engine extends ExpiringEngine {
  id: string;
  on(event: 'client' | 'clientDisconnect' | 'sessionExpired', fn: (client: { id: string; version?: number }) => void): unknown;
  publish(packet: Notice & { cmd: 'publish'; qos: 0; retain: false; dup: false }, done: () => void): void;
  mq: { on(topic: string, fn: (packet: Notice, done: () => void) => void, done?: () => void): void };
}

/**
 * Redis state keeps what the engine's session-expiry timers count (session-expiry.ts), so that a
 * restarted process, or any other process of the broker, expires the sessions on time. A record is
 * written when a session's connection ends with an expiry counting, and removed when the client
 * connects again (on any process) or the session expires. Every process counts every expiry: the
 * one where the connection ended tells the others (a $SYS notice through the message stream), so a
 * process that stops for good leaves no session without a timer, and each re-arms every record at
 * start. A session resumed on another process is taken off the timers by that process' "new client"
 * notice (patch 30); wiping an already wiped session is harmless.
 */
export function withSessionExpiryInRedis<T>(persistence: T, redis: Redis, log: Logger): T {
  return onSetup(persistence, (engine: Engine) => {
    const failed = (err: Error) => log.error({ err: err.message }, `cannot keep session expiry in redis: ${err.message}`);
    const forget = (id: string) => void redis.hdel(SESSION_EXPIRY_KEY, id).catch(failed);
    engine.on('client', (c) => forget(c.id));
    engine.on('sessionExpired', (c) => forget(c.id));
    engine.on('clientDisconnect', (c) => {
      // the engine arms the expiry right after this event (MQTT 5, and 3.1.1 persistent sessions
      // under persistent_client_expiration: patch 45)
      queueMicrotask(() => {
        const expiry = engine.sessionExpiry(c.id);
        if (!expiry) return;
        void redis.hset(SESSION_EXPIRY_KEY, c.id, JSON.stringify(expiry)).catch(failed);
        const payload = Buffer.from(JSON.stringify({ clientId: c.id, ...expiry }));
        engine.publish({ cmd: 'publish', topic: NOTICE(engine.id), payload, qos: 0, retain: false, dup: false }, () => undefined);
      });
    });
    engine.mq.on(NOTICE('+'), (packet, done) => {
      if (packet.topic !== NOTICE(engine.id)) armFromNotice(engine, packet.payload);
      done();
    });
    void restore(engine, redis, log).catch(failed);
  });
}

/** Another process' notice: only this process' own message stream carries it (clients cannot publish to $SYS). */
function armFromNotice(engine: Engine, payload: Buffer): void {
  let notice: Partial<SessionExpiry> & { clientId?: unknown };
  try {
    notice = JSON.parse(payload.toString()) as typeof notice;
  } catch {
    return;
  }
  const expiry = parseSessionExpiry(notice);
  if (typeof notice.clientId === 'string' && typeof expiry !== 'string')
    engine.restoreSessionExpiry(notice.clientId, expiry.interval, expiry.endedAt);
}

async function restore(engine: Engine, redis: Redis, log: Logger): Promise<void> {
  const records = await redis.hgetall(SESSION_EXPIRY_KEY);
  let n = 0;
  for (const [id, text] of Object.entries(records)) {
    let expiry: ReturnType<typeof parseSessionExpiry>;
    try {
      expiry = parseSessionExpiry(JSON.parse(text));
    } catch (err) {
      expiry = (err as Error).message;
    }
    if (typeof expiry === 'string') {
      log.warn({ client: id }, `redis ${SESSION_EXPIRY_KEY} record of ${id} left out (${expiry}): that session does not expire`);
      continue;
    }
    engine.restoreSessionExpiry(id, expiry.interval, expiry.endedAt);
    n++;
  }
  if (n) log.info(`session expiry counting again for ${n} MQTT 5 sessions`);
}
