import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

interface Sendable {
  sendCommand(command: { name: string; promise: Promise<unknown> }, ...rest: unknown[]): unknown;
}

export interface DrainableRedis {
  redis: Redis;
  /** Commands sent and not yet answered. */
  pending(): number;
  /**
   * Waits until no command has been pending for `quietMs` (work that chains Redis calls through
   * timers settles too), at most `capMs`, then closes the connection. Commands issued after that
   * are not sent: they are logged and never settle (see below).
   */
  shut(quietMs?: number, capMs?: number): Promise<void>;
}

/**
 * An ioredis connection that can be shut without failing the commands still under way.
 *
 * Why: at shutdown, Aedes and aedes-persistence-redis keep issuing Redis commands after the broker's
 * close() returned (a disconnecting client's will is published, then deleted from Redis). Quitting the
 * connection under them failed those commands with "Connection is closed", and some of those
 * rejections are not handled inside aedes-persistence-redis: an uncaught error, exit 1, and no
 * `broker-stopped` in the capture (issue 18). So the connection is quit only once it has been idle,
 * and a command that still comes later is parked instead of rejected: the process is exiting, and a
 * rejection nobody handles would kill it.
 */
export function drainable(redis: Redis, log: Logger, role: string): DrainableRedis {
  let inFlight = 0;
  let lastSettled = Date.now();
  let shut = false;
  let parked = 0;
  const r = redis as unknown as Sendable;
  const send = r.sendCommand.bind(r);
  r.sendCommand = (command, ...rest) => {
    if (shut && command.name !== 'quit') {
      if (parked++ === 0) log.warn({ role, command: command.name }, `redis command after shutdown not sent (${role})`);
      return command.promise;
    }
    inFlight++;
    const settled = () => {
      inFlight--;
      lastSettled = Date.now();
    };
    command.promise.then(settled, settled);
    return send(command, ...rest);
  };
  return {
    redis,
    pending: () => inFlight,
    async shut(quietMs = 100, capMs = 5_000) {
      const deadline = Date.now() + capMs;
      while (Date.now() < deadline && (inFlight > 0 || Date.now() - lastSettled < quietMs)) await new Promise((res) => setTimeout(res, 20));
      if (inFlight > 0) log.warn({ role, pending: inFlight }, `redis ${role}: ${inFlight} commands unanswered at shutdown`);
      shut = true;
      // a connection that is down (Redis away) would wait for its reconnection to send QUIT
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    },
  };
}
