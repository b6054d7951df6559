/**
 * Large messages do not stay in memory once delivered: the SSE history holds at most
 * http_sse_history_bytes of payload (evicted payloads are released at once, not kept until the next cut).
 */
import t from 'tap';
import v8 from 'node:v8';
import vm from 'node:vm';
import { startTestBroker } from '../helpers/broker.js';
import { connectClient, collect, until } from '../helpers/mqtt.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Buffer memory (outside the JS heap) after a full collection, in MB. */
function bufferMB(): number {
  gc();
  gc();
  return process.memoryUsage().arrayBuffers / 1024 / 1024;
}

t.test('12 messages of 16 MB through a broker with an SSE history: buffer memory returns to the history bound', async (t) => {
  const b = await startTestBroker(
    t,
    'listener 0 127.0.0.1\nallow_anonymous true\nmax_packet_size 20000000\nhttp_listener 0 127.0.0.1\nhttp_sse_history_bytes 16M\n',
  );
  const sub = await connectClient(t, b.mqttUrl, { clientId: 'sink' });
  const got = collect(sub);
  await sub.subscribeAsync('big/#', { qos: 1 });
  const pub = await connectClient(t, b.mqttUrl, { clientId: 'big-publisher' });
  const before = bufferMB();
  const payload = Buffer.alloc(16 * 1024 * 1024, 'p');
  for (let i = 0; i < 12; i++) await pub.publishAsync(`big/${i}`, payload, { qos: 1 });
  await until(() => got.length === 12, 30_000, 'all 12 delivered');
  got.length = 0; // the test's own copies
  await pub.endAsync();
  await sub.endAsync();
  await new Promise((r) => setTimeout(r, 200));
  const grown = bufferMB() - before;
  // the history may keep one 16 MB payload (its bound) plus socket and pool buffers; before the fix it kept all 12 (192 MB)
  t.ok(grown < 48, `buffer memory grew by ${grown.toFixed(1)} MB (bound 16 MB of history + slack)`);
});
