/**
 * The protocol fuzzer with a fixed seed (issue 18): hostile MQTT 3.1/3.1.1/5.0 byte streams over TCP
 * and WebSockets against an in-process mqprobe. The long run is `npx tsx bench/fuzz/run.ts`.
 */
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { startTestBroker, tempDir } from '../helpers/broker.js';
import { until } from '../helpers/mqtt.js';
import { runFuzz, roundTrip } from '../../bench/fuzz/drive.js';
import { checkCapture } from '../../bench/fuzz/capture-check.js';
import { fuzzCases, KINDS } from '../../bench/fuzz/packets.js';

const SEED = 18;
const CASES = 3000;
const CHECK_EVERY = 250;
/** Heap plus buffers may grow this much between the first batch and the end (sessions, retained messages). */
const MEMORY_BOUND = 48 * 1024 * 1024;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function liveBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const FUZZ_CONF = (capture: string) => `listener 0 127.0.0.1\nallow_anonymous true\nlistener 0 127.0.0.1\nprotocol websockets\ncapture_sink file ${capture}\n`;

t.test('the generator: the same seed gives the same bytes, every kind and version occurs', async (t) => {
  const a = [...fuzzCases(SEED, 400)];
  const b = [...fuzzCases(SEED, 400)];
  t.same(a.map((c) => Buffer.concat(c.chunks).toString('hex')), b.map((c) => Buffer.concat(c.chunks).toString('hex')), 'reproducible');
  const other = [...fuzzCases(SEED + 1, 400)];
  t.not(Buffer.concat(other[0].chunks).toString('hex') + other[1].kind, Buffer.concat(a[0].chunks).toString('hex') + a[1].kind, 'another seed, other bytes');
  t.same(new Set(a.map((c) => c.kind)), new Set(KINDS), 'every kind');
  t.same(new Set(a.map((c) => c.version)), new Set([3, 4, 5]), 'MQTT 3.1, 3.1.1 and 5.0');
  t.same(new Set(a.map((c) => c.delivery)), new Set(['whole', 'chunks', 'drip']), 'every delivery');
  t.ok(a.some((c) => c.rawHttp), 'HTTP straight at the WebSocket listener');
});

t.test(`fuzzer, seed ${SEED}: ${CASES} hostile cases over TCP and WebSockets; no crash, no hang, a gapless capture`, async (t) => {
  const crashes: unknown[] = [];
  const onCrash = (err: unknown) => crashes.push(err);
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  t.teardown(() => {
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
  });

  const dir = tempDir();
  const capture = join(dir, 'capture.ndjson');
  const b = await startTestBroker(t, FUZZ_CONF(capture), { dir });
  const target = { tcpPort: b.broker.ports[0], wsPort: b.broker.ports[1] };
  let baseline = 0;
  const stats = await runFuzz(target, {
    seed: SEED,
    count: CASES,
    concurrency: 16,
    idleMs: 150,
    checkEvery: CHECK_EVERY,
    onBatch: (done) => {
      if (done === CHECK_EVERY) baseline = liveBytes();
    },
  });
  t.same(crashes, [], 'no uncaught exception or unhandled rejection');
  t.equal(stats.cases, CASES);
  t.equal(stats.closedByBroker + stats.closedByFuzzer, CASES, 'every connection closed, by the broker or by the fuzzer');
  t.equal(stats.healthChecks, CASES / CHECK_EVERY, 'a QoS 1 round trip after every batch (TCP and WebSockets in turn)');
  t.ok(stats.closedByBroker > CASES / 2, `the broker itself closed most hostile connections (${stats.closedByBroker} of ${CASES})`);
  await until(() => b.broker.aedes.connectedClients === 0, 10_000, 'every fuzz client to be gone from the broker');
  const grown = liveBytes() - baseline;
  t.ok(grown < MEMORY_BOUND, `heap + buffers grew ${(grown / 1048576).toFixed(1)} MiB after the first batch (bound ${MEMORY_BOUND / 1048576} MiB)`);
  await roundTrip(b.mqttUrl, 'after-fuzz');
  t.comment(`closed by broker ${stats.closedByBroker}, by fuzzer ${stats.closedByFuzzer}, ws handshakes refused ${stats.handshakesRefused}, ${stats.durationMs} ms`);

  await b.broker.close();
  const check = await checkCapture(capture);
  t.same(check.problems, [], 'every capture line is JSON and event.sequence runs 1..N');
  t.ok(check.lines > CASES, `capture lines: ${check.lines}`);
  t.ok((check.byAction['protocol-error'] ?? 0) > CASES / 4, `protocol-error events: ${check.byAction['protocol-error']}`);
  t.equal(check.byAction['broker-stopped'], 1, 'the capture ends with the broker stopping');
  t.notOk(check.byAction['capture-dropped'], 'nothing dropped');
  t.same(crashes, [], 'still no uncaught exception after close');
});
