/**
 * The MQTT 5 probes of probes.ts against mqprobe itself (the CLI, its hooks and limits around the
 * vendored engine), configured as Mosquitto is in mqtt5-engine-evaluation.test.ts: its defaults
 * (max_inflight_messages 20, max_topic_alias 10) and max_packet_size 10000. Each answer is compared
 * with expected.ts, where the differences from Mosquitto are commented.
 */
import t from 'tap';
import { probeAll, startMqprobe } from './engines.js';

t.test('mqprobe, allow_anonymous true, max_packet_size 10000', async (tt) =>
  probeAll(tt, 'mqprobe', await startMqprobe(tt, 'allow_anonymous true\nmax_packet_size 10000\n')),
);
