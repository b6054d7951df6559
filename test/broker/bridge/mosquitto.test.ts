import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { freePort, spawnCli, startTestBroker, tempDir, waitForPort } from '../../helpers/broker.js';
import { startMosquitto, startMosquittoWithUser, type MosquittoPeer } from '../../helpers/mosquitto.js';
import { collect, connectClient, connectCollecting, until } from '../../helpers/mqtt.js';
import { makePki } from '../../helpers/certs.js';
import type { CaptureEvent } from '../../../capture/event.js';

// Real remotes: Mosquitto 2.0.11 (the Debian binary) on loopback, and mqprobe's bridge (broker/bridge/) in this process.

const HEAD = 'listener 0 127.0.0.1\nallow_anonymous true\n';
type Got = ReturnType<typeof collect>;

async function collector(t: Test, url: string, filters: string[] = ['#']): Promise<{ client: MqttClient; got: Got }> {
  const client = await connectClient(t, url);
  const got = collect(client);
  await client.subscribeAsync(filters, { qos: 1 });
  return { client, got };
}

/** Resolves once the remote holds the bridge's retained state notification with this payload. */
async function stateOn(t: Test, remote: MosquittoPeer, id: string, payload: '0' | '1'): Promise<void> {
  const { client, got } = await collector(t, remote.url, [`$SYS/broker/connection/${id}/state`]);
  await until(() => got.some((m) => m.payload.toString() === payload), 10_000, `state ${payload} of ${id}`);
  await client.endAsync();
}

const topics = (got: Got) => got.map((m) => m.topic).sort();

/**
 * The time left on the kernel's TCP keepalive timer of each established socket towards `port`, as `ss -o` shows
 * it (`timer:(keepalive,6.680ms,0)`: iproute2 prints seconds.milliseconds with an "ms" suffix; minutes and hours
 * as `1min`, `2h`); a socket without SO_KEEPALIVE has no keepalive timer. Over a minute counts as Infinity.
 */
function keepaliveTimers(port: number): number[] {
  const out = execFileSync('ss', ['-tnoH', 'state', 'established', 'dport', '=', `:${port}`], { encoding: 'utf8' });
  return [...out.matchAll(/timer:\(keepalive,([^,]+),/g)].map(([, left]) =>
    /min|h/.test(left) ? Infinity : Number(/^[\d.]+/.exec(left)?.[0] ?? NaN),
  );
}

const LINES = [
  'topic out/# out 1 lo/ ro/',
  'topic both/+ both 1 lb/ rb/',
  'topic in/# in 1 li/ ri/',
  'topic "" out 1 lx/fixed rx/fixed',
  'topic plain/# both 1',
  'topic pre/# out 1 "" rp/',
  'topic pre2/# in 1 lp2/ ""',
].join('\n');
const OUT: [string, string | null][] = [
  ['lo/out/a', 'ro/out/a'],
  ['lo/out', 'ro/out'],
  ['lb/both/x', 'rb/both/x'],
  ['lb/both/x/y', null],
  ['lx/fixed', 'rx/fixed'],
  ['plain/q', 'plain/q'],
  ['pre/z', 'rp/pre/z'],
  ['li/in/a', null],
  ['out/a', null],
];
const IN: [string, string | null][] = [
  ['ri/in/a', 'li/in/a'],
  ['rb/both/k', 'lb/both/k'],
  ['rx/fixed', null],
  ['plain/w', 'plain/w'],
  ['pre2/m', 'lp2/pre2/m'],
  ['ro/out/a', null],
];

t.test('topic mapping: table of prefix cases, mqprobe bridging to Mosquitto agrees with Mosquitto bridging to Mosquitto', async (t) => {
  const [r1, r2] = await Promise.all([startMosquitto(t), startMosquitto(t)]);
  const ref = await startMosquitto(
    t,
    `allow_anonymous true\nconnection ref\naddress 127.0.0.1:${r2.port}\nremote_clientid ref\n${LINES}\n`,
  );
  // max_inflight_messages 1: a window of one message still moves (each QoS 1 message after the one before)
  const mq = await startTestBroker(
    t,
    `${HEAD}max_inflight_messages 1\nconnection probe\naddress 127.0.0.1:${r1.port}\nremote_clientid probe\n${LINES}\n`,
  );
  await Promise.all([stateOn(t, r1, 'probe', '1'), stateOn(t, r2, 'ref', '1')]);
  const [atR1, atR2, atMq, atRef] = await Promise.all([r1.url, r2.url, mq.mqttUrl, ref.url].map((u) => collector(t, u)));
  const [pubMq, pubRef, pubR1, pubR2] = await Promise.all([mq.mqttUrl, ref.url, r1.url, r2.url].map((u) => connectClient(t, u)));

  // out: publish locally, then a sentinel on a line that crosses; QoS 1 over one connection keeps the order
  for (const [topic] of OUT) await Promise.all([pubMq.publishAsync(topic, 'o', { qos: 1 }), pubRef.publishAsync(topic, 'o', { qos: 1 })]);
  await Promise.all([pubMq.publishAsync('plain/end', 'e', { qos: 1 }), pubRef.publishAsync('plain/end', 'e', { qos: 1 })]);
  // the local subscribers too: their copies of the out messages must not arrive after the reset below (QoS 1 from
  // one connection keeps the order, so the sentinel comes after all of them)
  await until(() => [atR1, atR2, atMq, atRef].every((c) => c.got.some((m) => m.topic === 'plain/end')), 10_000, 'the out sentinel');
  const expectedOut = [...OUT.flatMap(([, r]) => (r ? [r] : [])), 'plain/end'].sort();
  t.same(topics(atR2.got), expectedOut, 'Mosquitto maps out as the table says');
  t.same(topics(atR1.got), topics(atR2.got), 'mqprobe maps out as Mosquitto');

  atMq.got.length = atRef.got.length = 0;
  for (const [topic] of IN) await Promise.all([pubR1.publishAsync(topic, 'i', { qos: 1 }), pubR2.publishAsync(topic, 'i', { qos: 1 })]);
  await Promise.all([pubR1.publishAsync('plain/end2', 'e', { qos: 1 }), pubR2.publishAsync('plain/end2', 'e', { qos: 1 })]);
  await until(() => [atMq, atRef].every((c) => c.got.some((m) => m.topic === 'plain/end2')), 10_000, 'the in sentinel');
  const expectedIn = [...IN.flatMap(([, l]) => (l ? [l] : [])), 'plain/end2'].sort();
  t.same(topics(atRef.got), expectedIn, 'Mosquitto maps in as the table says');
  t.same(topics(atMq.got), topics(atRef.got), 'mqprobe maps in as Mosquitto');

  // no echo either way (try_private): what crossed once does not come back
  await new Promise((r) => setTimeout(r, 300));
  t.equal(atR1.got.filter((m) => m.topic === 'plain/w').length, 1, 'a remote message that came in is not sent back out');
  t.equal(atMq.got.filter((m) => m.topic === 'plain/w').length, 1, 'and reaches the local subscriber once');
});

t.test('MQTT 5 remote (bridge_protocol_version mqttv50): both directions, no echo, local engine on 3.1.1', async (t) => {
  const remote = await startMosquitto(t);
  const mq = await startTestBroker(
    t,
    `${HEAD}connection v5\naddress 127.0.0.1:${remote.port}\nremote_clientid v5br\nbridge_protocol_version mqttv50\ntopic loop/# both 1\n`,
  );
  await stateOn(t, remote, 'v5br', '1');
  t.match(remote.output(), /connected from .* as v5br \(p5/, 'the remote saw an MQTT 5 connection');
  const [atR, atL] = await Promise.all([collector(t, remote.url), collector(t, mq.mqttUrl)]);
  const [pubR, pubL] = await Promise.all([connectClient(t, remote.url), connectClient(t, mq.mqttUrl)]);
  await pubL.publishAsync('loop/from-local', 'a', { qos: 1 });
  await pubR.publishAsync('loop/from-remote', 'b', { qos: 1 });
  await until(() => atR.got.length >= 2 && atL.got.length >= 2, 10_000, 'both messages on both sides');
  await new Promise((r) => setTimeout(r, 300));
  t.same(topics(atR.got), ['loop/from-local', 'loop/from-remote'], 'remote: each once');
  t.same(topics(atL.got), ['loop/from-local', 'loop/from-remote'], 'local: each once');
  t.same(keepaliveTimers(remote.port), [], 'no bridge_tcp_keepalive: no TCP keepalive on any socket to the remote');
});

t.test('remote down for 10 s: 1,000 QoS 1 messages wait in the local broker and arrive once each, in order', async (t) => {
  const dir = tempDir('mqprobe-bridge-remote-');
  chmodSync(dir, 0o777);
  const remote = await startMosquitto(t, `allow_anonymous true\npersistence true\npersistence_location ${dir}/\n`, { dir });
  const sink = await connectClient(t, remote.url, { clientId: 'sink', clean: false });
  await sink.subscribeAsync('q/#', { qos: 1 });
  await sink.endAsync();
  const mq = await startTestBroker(
    t,
    `${HEAD}connection down\naddress 127.0.0.1:${remote.port}\nremote_clientid down\nrestart_timeout 1\ntopic q/# out 1\n`,
  );
  await stateOn(t, remote, 'down', '1');
  await remote.stop('SIGTERM');
  const downSince = Date.now();
  const pub = await connectClient(t, mq.mqttUrl);
  for (let i = 0; i < 1000; i++) await pub.publishAsync('q/x', `m${i}`, { qos: 1 });
  // the outage itself is the scenario: several reconnection attempts fail meanwhile
  await new Promise((r) => setTimeout(r, Math.max(0, 10_000 - (Date.now() - downSince))));
  t.match(await mq.broker.metrics.metrics(), /mqprobe_bridge_reconnects_total\{connection="down"\} ([5-9]|\d\d)/, 'it kept trying');
  await remote.start();
  const { got } = await connectCollecting(t, remote.url, { clientId: 'sink', clean: false });
  await until(() => got.length >= 1000, 30_000, '1,000 messages at the remote');
  await new Promise((r) => setTimeout(r, 300));
  t.same(
    got.map((m) => m.payload.toString()),
    Array.from({ length: 1000 }, (_, i) => `m${i}`),
    'once each, in order',
  );
});

/** The bridge's metric of messages handed to the remote and not yet acknowledged. */
async function inFlight(mq: { broker: { metrics: { metrics(): Promise<string> } } }, name: string): Promise<number> {
  return Number(new RegExp(`mqprobe_bridge_queued\\{connection="${name}"\\} (\\d+)`).exec(await mq.broker.metrics.metrics())?.[1]);
}

/** `mosquitto_pub -l`: one message per line (QoS 1 unless told), as fast as its 20 messages in flight allow. */
async function publishLines(port: number, topic: string, lines: string[], qos = 1): Promise<void> {
  const p = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-q', String(qos), '-t', topic, '-l'], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let err = '';
  p.stderr.on('data', (d) => (err += d));
  p.stdin.end(lines.join('\n') + '\n');
  const code = await new Promise((r) => p.once('exit', r));
  if (code !== 0) throw new Error(`mosquitto_pub exited ${code}: ${err}`);
}

const numbered = (n: number) => Array.from({ length: n }, (_, i) => `m${i}`);

t.test("several in flight: a 5,000-message QoS 1 burst arrives complete and in order, as through Mosquitto's bridge", async (t) => {
  // max_queued_messages 0 on the remote, 5000 on the local sides: on a loaded machine the publisher may outpace any
  // bridge (Mosquitto's too) by more than the default 1,000 queued; here the order through the window is what counts,
  // and the window's bound is checked below, where the remote stops answering
  const remote = await startMosquitto(t, 'allow_anonymous true\nmax_inflight_messages 7\nmax_queued_messages 0\n');
  const mq = await startTestBroker(
    t,
    `${HEAD}max_inflight_messages 12\nmax_queued_messages 5000\n` +
      `connection w4\naddress 127.0.0.1:${remote.port}\nremote_clientid w4\ntopic burst/# out 1\ntopic back/# in 1\n` +
      `connection w5\naddress 127.0.0.1:${remote.port}\nremote_clientid w5\nbridge_protocol_version mqttv50\ntopic five/# out 1\ntopic two/# out 2\n`,
  );
  const ref = await startMosquitto(
    t,
    `allow_anonymous true\nmax_queued_messages 5000\nconnection ref\naddress 127.0.0.1:${remote.port}\nremote_clientid ref\ntopic ref/# out 1\n`,
  );
  await Promise.all(['w4', 'w5', 'ref'].map((id) => stateOn(t, remote, id, '1')));
  const at = await collector(t, remote.url, ['burst/#', 'five/#', 'ref/#']);
  const atTwo = await connectClient(t, remote.url);
  const gotTwo = collect(atTwo);
  await atTwo.subscribeAsync('two/#', { qos: 2 });
  const payloads = (topic: string) => at.got.filter((m) => m.topic === topic).map((m) => m.payload.toString());

  await publishLines(mq.port, 'burst/x', numbered(5000));
  await until(() => payloads('burst/x').length >= 5000, 40_000, '5,000 messages at the remote');
  t.same(payloads('burst/x'), numbered(5000), 'complete and in order');
  t.match(await mq.broker.metrics.metrics(), /mqprobe_publish_dropped_total 0/, 'nothing dropped in the local broker');
  await publishLines(mq.port, 'two/x', numbered(500), 2);
  await until(() => gotTwo.length >= 500, 40_000, '500 QoS 2 messages at the remote');
  await new Promise((r) => setTimeout(r, 200));
  t.same(
    gotTwo.map((m) => [m.payload.toString(), m.qos]),
    numbered(500).map((p) => [p, 2]),
    'QoS 2 through the MQTT 5 bridge (PUBCOMP on both sides, 7 in flight): once each, in order',
  );
  await publishLines(ref.port, 'ref/x', numbered(5000));
  await until(() => payloads('ref/x').length >= 5000, 40_000, "5,000 messages through Mosquitto's bridge");
  t.same(payloads('ref/x'), numbered(5000), "Mosquitto's bridge: the same");
  const atLocal = await collector(t, mq.mqttUrl, ['back/#']);
  await publishLines(remote.port, 'back/x', numbered(5000));
  await until(() => atLocal.got.length >= 5000, 40_000, '5,000 messages in from the remote');
  t.same(
    atLocal.got.map((m) => m.payload.toString()),
    numbered(5000),
    'the other way (in): complete and in order',
  );

  t.test("the window: max_inflight_messages, or an MQTT 5 remote's Receive Maximum (as Mosquitto's bridge)", async (t) => {
    // a remote that takes packets and answers none (SIGSTOP): each bridge fills its window and no more
    const pub = await connectClient(t, mq.mqttUrl);
    remote.signal('SIGSTOP');
    t.teardown(() => remote.signal('SIGCONT'));
    for (const p of numbered(40))
      await Promise.all([pub.publishAsync('burst/y', p, { qos: 1 }), pub.publishAsync('five/y', p, { qos: 1 })]);
    const full = async () => (await inFlight(mq, 'w4')) === 12 && (await inFlight(mq, 'w5')) === 7;
    for (const deadline = Date.now() + 10_000; !(await full()) && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    t.equal(await inFlight(mq, 'w4'), 12, 'MQTT 3.1.1 remote: max_inflight_messages (12) in flight, the rest waits in the local session');
    t.equal(await inFlight(mq, 'w5'), 7, "MQTT 5 remote: its Receive Maximum (7, Mosquitto's max_inflight_messages) in flight");
    remote.signal('SIGCONT');
    await until(() => payloads('burst/y').length >= 40 && payloads('five/y').length >= 40, 20_000, 'the held messages');
    t.same(payloads('burst/y'), numbered(40), '3.1.1: every held message once, in order');
    t.same(payloads('five/y'), numbered(40), '5.0: the same');
  });
});

t.test('notifications: "1" on connect, "0" on a clean stop, and the will "0" when mqprobe is killed -9', async (t) => {
  const remote = await startMosquitto(t);
  const mq = await startTestBroker(
    t,
    `${HEAD}connection n\naddress 127.0.0.1:${remote.port}\nremote_clientid clean-stop\ntopic x/# out 0\n`,
  );
  await stateOn(t, remote, 'clean-stop', '1');
  const local = await collector(t, mq.mqttUrl, ['$SYS/broker/connection/#']);
  await until(() => local.got.some((m) => m.payload.toString() === '1'), 5000, 'the local notification');
  await mq.broker.close();
  await stateOn(t, remote, 'clean-stop', '0');
  t.match(remote.output(), /Client clean-stop disconnected\./, 'a clean DISCONNECT');

  const port = await freePort();
  const file = join(tempDir(), 'mqprobe.conf');
  writeFileSync(
    file,
    `listener ${port} 127.0.0.1\nallow_anonymous true\nuser root\nconnection k\naddress 127.0.0.1:${remote.port}\nremote_clientid killed\ntopic x/# out 0\n`,
  );
  const cli = spawnCli(t, ['-c', file]);
  await waitForPort(port);
  await stateOn(t, remote, 'killed', '1');
  cli.child.kill('SIGKILL');
  await stateOn(t, remote, 'killed', '0');
  t.pass('the remote published the will: it sees the bridge down');
});

t.test('TLS bridge to a TLS Mosquitto; a remote whose certificate the CA does not sign: one line per attempt and a backoff', async (t) => {
  const pki = makePki();
  const other = makePki();
  const tlsPort = await freePort();
  const remote = await startMosquitto(
    t,
    `allow_anonymous true\nlistener ${tlsPort} 127.0.0.1\ncafile ${pki.caCert}\ncertfile ${pki.serverCert}\nkeyfile ${pki.serverKey}\nallow_anonymous true\n`,
    { dir: pki.dir },
  );
  const mq = await startTestBroker(
    t,
    `${HEAD}connection tls\naddress localhost:${tlsPort}\nremote_clientid tlsbr\nbridge_cafile ${pki.caCert}\nbridge_tcp_keepalive 7\ntopic s/# both 1 l/ r/\n` +
      `connection untrusted\naddress 127.0.0.1:${tlsPort}\nremote_clientid untrusted\nbridge_cafile ${other.caCert}\nrestart_timeout 1\ntopic u/#\n`,
  );
  await stateOn(t, remote, 'tlsbr', '1');
  const atR = await collector(t, remote.url, ['r/#']);
  const pub = await connectClient(t, mq.mqttUrl);
  await pub.publishAsync('l/s/1', 'over tls', { qos: 1 });
  await until(() => atR.got.length === 1, 5000, 'the message over TLS');
  t.equal(atR.got[0].topic, 'r/s/1');
  // SO_KEEPALIVE with TCP_KEEPIDLE 7 s on the bridge's socket alone (Linux's default idle is 7200 s)
  const timers = keepaliveTimers(tlsPort);
  t.equal(timers.length, 1, `one socket to the remote has a TCP keepalive timer (${timers.join(', ')} s)`);
  t.ok(timers[0] <= 7, 'bridge_tcp_keepalive 7: the first probe within 7 s of silence');
  await until(
    () => (readFileSync(mq.logFile, 'utf8').match(/bridge untrusted .*retrying in/g) ?? []).length >= 2,
    10_000,
    'two failed attempts',
  );
  const lines = readFileSync(mq.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('bridge untrusted'));
  t.match(lines[0], /certificate|self.signed|unable to verify/i, 'the TLS error is named');
});

t.test('refused credentials: CONNACK code logged, backoff per restart_timeout, the password never in the log', async (t) => {
  const remote = await startMosquittoWithUser(t, 'gw', 'right-one');
  const started = Date.now();
  const mq = await startTestBroker(
    t,
    `${HEAD}connection auth\naddress 127.0.0.1:${remote.port}\nremote_clientid authbr\nremote_username gw\nremote_password s3cret-wrong\nrestart_timeout 1\ntopic a/#\n`,
  );
  const events: CaptureEvent[] = [];
  mq.broker.capture.subscribe((e) => void events.push(e));
  await until(
    () => (readFileSync(mq.logFile, 'utf8').match(/bridge auth .*retrying in 1\.0 s/g) ?? []).length >= 3,
    10_000,
    'three attempts',
  );
  const failed = events.find((e) => e.event.action === 'bridge-connect-failed');
  t.match(
    failed,
    { event: { outcome: 'failure', reason: /CONNACK refused \(5\)/ }, mqprobe: { bridge: { connection: 'auth', state: 'waiting' } } },
    'captured: bridge-connect-failed',
  );
  t.notMatch(JSON.stringify(events), /s3cret-wrong/, 'the password is in no capture event');
  t.ok(Date.now() - started >= 2000, 'attempts one restart_timeout apart');
  const log = readFileSync(mq.logFile, 'utf8');
  t.match(log, /CONNACK refused \(5\)/, 'the CONNACK code is named');
  t.notMatch(log, /s3cret-wrong/, 'the remote password is not in the log');
  const metrics = await mq.broker.metrics.metrics();
  t.notMatch(metrics, /s3cret-wrong/, 'nor in the metrics');
  t.match(metrics, /mqprobe_bridge_state\{connection="auth",state="waiting"\} 1/);
});

t.test('start_type lazy: connects at the threshold, leaves after idle_timeout; address failover', async (t) => {
  const remote = await startMosquitto(t);
  const dead = await freePort();
  const mq = await startTestBroker(
    t,
    `${HEAD}connection lazy\naddress 127.0.0.1:${remote.port}\nremote_clientid lazybr\nstart_type lazy\nthreshold 3\nidle_timeout 1\ntopic z/# out 0\n` +
      `connection failover\naddress 127.0.0.1:${dead} 127.0.0.1:${remote.port}\nremote_clientid failbr\nrestart_timeout 1\ntopic f/# out 0\n`,
  );
  await stateOn(t, remote, 'failbr', '1');
  t.pass('the second address took over from the dead first one');
  const atR = await collector(t, remote.url, ['z/#', '$SYS/broker/connection/lazybr/state']);
  const events: CaptureEvent[] = [];
  mq.broker.capture.subscribe((e) => void events.push(e));
  const pub = await connectClient(t, mq.mqttUrl);
  await pub.publishAsync('z/1', '1');
  await pub.publishAsync('z/2', '2');
  await new Promise((r) => setTimeout(r, 300));
  t.same(atR.got, [], 'below the threshold: not connected');
  await pub.publishAsync('z/3', '3');
  await until(() => atR.got.filter((m) => m.topic.startsWith('z/')).length === 3, 5000, 'the three held messages');
  await until(() => atR.got.some((m) => m.topic.endsWith('/state') && m.payload.toString() === '0'), 5000, 'idle disconnect');
  await until(() => events.some((e) => e.event.action === 'bridge-disconnected'), 5000, 'the capture event');
  t.same(
    events.filter((e) => e.event.action.startsWith('bridge-')).map((e) => [e.event.action, e.event.reason ?? '']),
    [
      ['bridge-connected', ''],
      ['bridge-disconnected', 'idle_timeout'],
    ],
    'captured: bridge-connected, then bridge-disconnected (idle_timeout)',
  );
});
