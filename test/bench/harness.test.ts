import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { aedesVersion, brokerVariants, findMosquitto, mosquittoVersion, type BrokerVariant } from '../../bench/harness/brokers.js';
import { FrameReader, PublishTemplate, encodeConnect } from '../../bench/harness/load/packets.js';
import type { ConnectResult, FlowJob, FlowResult } from '../../bench/harness/load/jobs.js';
import { parseOptions } from '../../bench/harness/options.js';
import { repoRoot } from '../../bench/harness/processes.js';
import { BEGIN, END, mergeResults } from '../../bench/harness/results.js';
import { createSetup, runOne } from '../../bench/harness/runner.js';
import { connectionsOf, PROFILES, scenarioCases, type ScenarioCase } from '../../bench/harness/scenarios.js';
import { sourceAddress } from '../../bench/harness/load/connect.js';
import { openFilesLimit } from '../../bench/harness/fd-limit.js';
import { spread } from '../../bench/harness/summary.js';
import { variantsFor } from '../../bench/harness/tables.js';

t.test('50,000 connections: source addresses past the ports of one, and the open-files limit they need', async (t) => {
  t.equal(sourceAddress(0, 5000), undefined, 'a small storm keeps the default source address');
  t.same(
    [0, 19_999, 20_000, 49_999].map((i) => sourceAddress(i, 50_000)),
    ['127.0.0.1', '127.0.0.1', '127.0.0.2', '127.0.0.3'],
  );
  const full = scenarioCases(PROFILES.full);
  t.equal(Math.max(...full.map(connectionsOf)), 50_000, 'D-50000 is the largest case');
  t.equal(connectionsOf(full.find((c) => c.id === 'G')!), 10_000, 'G: 10,000 clients reconnect');
  t.equal(connectionsOf(full.find((c) => c.id === 'A')!), 0, 'message scenarios hold a few connections');
  const limit = openFilesLimit();
  t.ok(limit > 0, `this process may open ${limit} files`);
});

t.test('options: profiles, lists, output folder, refusals', async (t) => {
  const now = new Date('2026-11-23T08:00:00Z');
  const full = parseOptions([], now);
  t.equal(full.profile.name, 'full');
  t.equal(full.profile.rounds, PROFILES.full.rounds);
  t.same(full.scenarios, ['A', 'B', 'C', 'D', 'E', 'F', 'G']);
  t.equal(full.out, join(repoRoot, 'bench'));
  t.equal(full.pin, true);
  t.equal(full.cpuProf, undefined, 'no profiling unless asked');
  t.equal(parseOptions(['--cpu-prof', 'prof'], now).cpuProf, resolve('prof'));

  const quick = parseOptions(['--quick'], now);
  t.equal(quick.profile.name, 'quick');
  t.equal(quick.out, join(repoRoot, 'bench', 'out', 'quick-2026-11-23-08-00-00'), 'a smoke check never overwrites bench/RESULTS.md');

  const custom = parseOptions(
    [
      '--rounds',
      '3',
      '--duration',
      '2.5',
      '--warmup',
      '0',
      '--scenarios',
      'a,d-2000,E-Password',
      '--brokers',
      'mosquitto,mqprobe',
      '--no-pin',
      '--out',
      'x',
    ],
    now,
  );
  t.equal(custom.profile.name, 'full, adjusted');
  t.equal(custom.profile.rounds, 3);
  t.equal(custom.profile.durationMs, 2500);
  t.equal(custom.profile.warmupMs, 0);
  t.same(custom.scenarios, ['A', 'D-2000', 'E-password']);
  t.same(custom.brokers, ['mosquitto', 'mqprobe']);
  t.equal(custom.pin, false);
  t.equal(custom.out, join(process.cwd(), 'x'));
  t.equal(full.profile.stormWarmupClients, 0, 'a storm measures a broker fresh from its start unless asked');
  const warm = parseOptions(['--storm-warmup', '2000'], now);
  t.equal(warm.profile.stormWarmupClients, 2000);
  t.equal(warm.profile.name, 'full, adjusted');
  t.throws(() => parseOptions(['--storm-warmup=-1']), /--storm-warmup expects a number ≥ 0/);
  t.throws(() => parseOptions(['--storm-warmup', 'many']), /--storm-warmup expects a number ≥ 0/);

  t.throws(() => parseOptions(['--rounds', '0']), /--rounds expects a number ≥ 1/);
  t.throws(() => parseOptions(['--duration', 'soon']), /--duration expects a number/);
  t.throws(() => parseOptions(['--scenarios', 'Z']), /unknown scenario "Z"/);
  t.same(parseOptions(['--scenarios', 'a5,C5'], now).scenarios, ['A5', 'C5'], 'the MQTT 5 cases by id');
  t.throws(() => parseOptions(['--scenarios', 'B5']), /unknown scenario "B5"/);
  t.throws(() => parseOptions(['--fast']), /Unknown option '--fast'/);
  t.throws(() => parseOptions(['A']), /positional/);
});

t.test('RESULTS.md: the generated section replaces only its own markers', async (t) => {
  const others = '# mqprobe benchmarks\n\nintro\n\n## Capture\n\ncapture figures\n';
  const first = mergeResults(others, 'run 1');
  t.match(first, /## Capture\n\ncapture figures/);
  t.match(first, `${BEGIN}\nrun 1\n${END}`);
  const second = mergeResults(`${first}\n## Detection\n\ndetection figures\n`, 'run 2');
  t.notMatch(second, /run 1/);
  t.match(second, /intro[\s\S]*## Capture[\s\S]*run 2[\s\S]*## Detection\n\ndetection figures/);
  t.match(mergeResults(undefined, 'fresh'), /^# mqprobe benchmarks\n/);
});

t.test('medians with min–max', async (t) => {
  t.same(spread([3, 1, 2]), { median: 2, min: 1, max: 3, n: 3 });
  t.same(spread([4, 1, 2, 3]), { median: 2.5, min: 1, max: 4, n: 4 });
  t.equal(spread([]), undefined);
});

t.test('frame reader: packets cut anywhere come out whole; a bad length is an error', async (t) => {
  const publish = new PublishTemplate('bench/3', 1, 64, 3);
  const two = Buffer.alloc(publish.bytes.length * 2);
  publish.writeTo(two, publish.writeTo(two, 0, 41, 1.5), 42, 2.5);
  const buf = Buffer.concat([two, encodeConnect({ clientId: 'x' })]);
  for (let cut = 1; cut < buf.length; cut++) {
    const seen: number[] = [];
    const r = new FrameReader((type, _flags, b, start, end) => seen.push(type === 3 ? b.readUInt32LE(end - 64 + 4) : type));
    r.push(buf.subarray(0, cut));
    r.push(buf.subarray(cut));
    if (seen.join() !== '41,42,1') t.fail(`cut at ${cut}: ${seen.join()}`);
  }
  t.throws(() => new FrameReader(() => undefined).push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])), /malformed remaining length/);
});

t.test('runs against real brokers count every message and connection', async (t) => {
  const setup = createSetup({ reason: 'test' }, 100);
  t.teardown(() => rmSync(setup.dir, { recursive: true, force: true }));
  const bin = findMosquitto();
  const variants = brokerVariants(bin, { mosquitto: bin && mosquittoVersion(bin), aedes: aedesVersion() });
  const variant = (id: string) => variants.find((v) => v.id === id) as BrokerVariant;
  const cases = scenarioCases({
    ...PROFILES.quick,
    warmupMs: 100,
    durationMs: 400,
    idleClients: [60],
    stormClients: 40,
    reconnectClients: 40,
    settleMs: 100,
  });
  const sc = (id: string) => cases.find((c) => c.id === id) as ScenarioCase;
  const run = async (c: ScenarioCase, v: BrokerVariant) => {
    const r = await runOne(setup, c, v, 1, () => undefined);
    t.same(r.problems, [], `${c.id} on ${v.id}: no problems`);
    t.ok(r.ok, `${c.id} on ${v.id}: ok`);
    return r;
  };

  await t.test('QoS 1 fan-in through mqprobe: every message once, every publish acknowledged', async (t) => {
    const r = await run(sc('B'), variant('mqprobe'));
    const f = r.result as FlowResult;
    t.ok(f.published > 0, `published ${f.published}`);
    t.equal(f.expected, f.published, 'one subscriber');
    t.equal(f.delivered, f.published);
    t.equal(f.pubacks, f.published);
    t.equal(f.lost, 0);
    t.equal(f.misordered, 0);
    t.ok(r.metrics.msg_per_s! > 0);
  });

  await t.test('QoS 0 fan-out through bare Aedes: every subscriber gets every message', async (t) => {
    const f = (await run(sc('C'), variant('aedes'))).result as FlowResult;
    t.ok(f.published > 0);
    t.equal(f.expected, f.published * 50);
    t.equal(f.delivered, f.expected);
  });

  await t.test('C5: QoS 0 fan-out with every client on MQTT 5 through mqprobe; bare Aedes 1.2 sits out A5 and C5', async (t) => {
    const f = (await run(sc('C5'), variant('mqprobe'))).result as FlowResult;
    t.ok(f.published > 0);
    t.equal(f.delivered, f.published * 50, 'every subscriber got every message');
    const aedes = variant('aedes');
    t.same(
      ['A', 'A5', 'C', 'C5'].map((id) => variantsFor(sc(id), [aedes]).length),
      [1, 0, 1, 0],
    );
  });

  await t.test(
    'QoS 1 fan-in over MQTT 5 (bench/engine) through Mosquitto: every publish acknowledged, nothing twice',
    { skip: bin ? false : 'mosquitto is not installed' },
    async (t) => {
      const b = sc('B');
      const over5: ScenarioCase = { ...b, job: (c) => ({ ...(b.job(c) as FlowJob), protocolVersion: 5 }) };
      // not run(): Mosquitto 2.0.11 drops a few QoS 1 messages in B (bench/README.md); what is checked
      // here is the MQTT 5 encoding of the load (packet ids under the property length, the SUBACK read)
      const f = (await runOne(setup, over5, variant('mosquitto'), 1, () => undefined)).result as FlowResult;
      t.ok(f.published > 0, `published ${f.published}`);
      t.equal(f.pubacks, f.published, 'one PUBACK per publish: the packet ids were where MQTT 5 puts them');
      t.ok(f.delivered > 0 && f.delivered + f.lost === f.published, `delivered ${f.delivered}, lost ${f.lost}`);
      t.equal(f.misordered, 0);
    },
  );

  await t.test('capture to the json_lines receiver: every event accounted for', async (t) => {
    const r = await run(sc('A'), variant('mqprobe-capture'));
    const f = r.result as FlowResult;
    t.equal(f.delivered, f.published);
    t.ok(r.capture, 'receiver stats');
    // one publish-received per message, plus connects, subscriptions and broker start/stop
    t.ok(r.capture!.lines > f.published, `${r.capture!.lines} events for ${f.published} publishes`);
    t.equal(r.capture!.unaccounted, 0);
    t.equal(r.capture!.maxSequence, r.capture!.lines + r.capture!.dropped);
  });

  await t.test('latency at a fixed rate: percentiles over the window', async (t) => {
    const f = (await run(sc('F'), variant('mqprobe'))).result as FlowResult;
    t.ok(f.latencyMs && f.latencyMs.samples > 1000, `samples ${f.latencyMs?.samples}`);
    t.ok(f.latencyMs!.p50 <= f.latencyMs!.p99 && f.latencyMs!.p99 <= f.latencyMs!.p999 && f.latencyMs!.p999 <= f.latencyMs!.max);
  });

  await t.test('idle clients and a password storm on Mosquitto and mqprobe', async (t) => {
    // no skip: the preflight (test/preflight.ts) stops `npm test` when mosquitto is missing
    if (!t.ok(bin, 'mosquitto is installed')) return;
    for (const id of ['mosquitto', 'mqprobe']) {
      const idle = (await run(sc('D-60'), variant(id))).result as ConnectResult;
      t.equal(idle.connected, 60, `${id}: 60 idle clients`);
      t.ok(idle.rssAfterKb! > 0 && idle.perConnectionKb !== undefined, `${id}: memory read from /proc`);
      const storm = (await run(sc('E-password'), variant(id))).result as ConnectResult;
      t.equal(storm.connected, 40, `${id}: 40 clients logged in`);
      t.ok(storm.connectsPerSec > 0);
      const back = (await run(sc('G'), variant(id))).result as ConnectResult;
      t.equal(back.connected, 40, `${id}: 40 clients back after their sockets were reset at once`);
      t.equal(back.refused + back.failed, 0, `${id}: none refused or timed out`);
    }
  });

  await t.test('the Node floor holds idle clients and takes a storm, and sits out the message scenarios', async (t) => {
    const floor = variant('node-floor');
    const idle = (await run(sc('D-60'), floor)).result as ConnectResult;
    t.equal(idle.connected, 60, '60 idle clients got their CONNACK');
    const storm = (await run(sc('E-anonymous'), floor)).result as ConnectResult;
    t.equal(storm.connected, 40);
    t.same(
      cases.filter((c) => variantsFor(c, [floor]).length).map((c) => c.id),
      ['D-60', 'E-anonymous'],
    );
  });

  await t.test('--cpu-prof: a Node broker run leaves a V8 CPU profile, stopped with SIGTERM', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-prof-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const r = await runOne({ ...setup, cpuProf: dir }, sc('D-60'), variant('mqprobe'), 1, () => undefined);
    t.ok(r.ok, r.problems.join('; '));
    const files = readdirSync(join(dir, 'D-60-mqprobe-r1')).filter((f) => f.endsWith('.cpuprofile'));
    t.ok(files.length >= 1, `profiles: ${files.join(', ')}`);
    const profile = JSON.parse(readFileSync(join(dir, 'D-60-mqprobe-r1', files[0]), 'utf8')) as { nodes: unknown[] };
    t.ok(profile.nodes.length > 0, 'the profile has call tree nodes');
  });

  await t.test('--storm-warmup: other clients connect and are closed first; the storm counts only its own', async (t) => {
    const warmCases = scenarioCases({ ...PROFILES.quick, stormClients: 40, stormWarmupClients: 30, settleMs: 100 });
    const storm = warmCases.find((c) => c.id === 'E-password') as ScenarioCase;
    for (const id of ['mosquitto', 'mqprobe']) {
      const r = (await run(storm, variant(id))).result as ConnectResult;
      t.equal(r.warmupConnected, 30, `${id}: 30 warm-up clients logged in first`);
      t.equal(r.connected, 40, `${id}: then the 40 of the storm`);
      t.equal(r.refused + r.failed, 0, `${id}: none refused or failed`);
    }
    const cold = (await run(sc('E-password'), variant('mqprobe'))).result as ConnectResult;
    t.equal(cold.warmupConnected, undefined, 'no warm-up unless asked');
  });

  await t.test('a wrong password is counted as refused, not as connected', async (t) => {
    const wrong = { ...setup, credentials: { username: 'bench', password: 'wrong' } };
    const r = await runOne(wrong, sc('E-password'), variant('mqprobe'), 1, () => undefined);
    const c = r.result as ConnectResult;
    t.equal(r.ok, false);
    t.equal(c.connected, 0);
    t.equal(c.refused, 40);
    t.match(r.problems.join(), /0 of 40 clients connected \(40 refused/);
  });
});
