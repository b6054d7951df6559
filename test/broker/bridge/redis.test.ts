import t from 'tap';
import { startRedis } from '../../helpers/redis.js';
import { sigkillWhileRemoteDown } from './outage.js';

// The bridge's local session kept in Redis (persistence_redis_url) instead of the snapshot file: a real
// redis-server, the real CLI killed -9, a real Mosquitto 2.0.11 as the remote.

t.test(
  'SIGKILL of mqprobe with its state in Redis while the remote is down: the 1,000 waiting QoS 1 messages go out after the restart',
  async (t) => {
    const redis = await startRedis(t);
    // every publish was acknowledged after Redis took it: nothing to wait for before the kill
    await sigkillWhileRemoteDown(t, `persistence_redis_url ${redis.url}\n`, async () => undefined);
  },
);
