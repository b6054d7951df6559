import t from 'tap';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { freePort, spawnCli, tempDir, type BrokerProcess } from '../helpers/broker.js';
import { makePki } from '../helpers/certs.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { until } from '../helpers/mqtt.js';

/**
 * The same client actions against the real Mosquitto 2.0.11 (`-v`: log_type all) and against
 * mqprobe (`log_type all`, Mosquitto log format): the log lines between "running" and
 * "terminating" must be the same, with timestamps and client ports masked.
 */
const SECRET = 'hunter2-secret';

/** A real client session per action, each finished before the next starts. */
async function clientActions(port: number): Promise<void> {
  // each action's last packet is handled before the next connection opens (the broker reads asynchronously)
  const run = async (cmd: string, args: string[]) => {
    spawnSync(cmd, ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 300));
  };
  await run('mosquitto_pub', ['-i', 'sensor-1', '-u', 'bob', '-P', SECRET, '-t', 'a', '-m', 'x']);
  await run('mosquitto_pub', ['-i', 'bad-1', '-u', 'bob', '-P', 'wrong', '-t', 'a', '-m', 'x']);
  await run('mosquitto_pub', ['-i', 'anon-1', '-t', 'a', '-m', 'x']);
  await run('mosquitto_sub', ['-i', 'sub-1', '-u', 'bob', '-P', SECRET, '-t', 'a/#', '-t', 'b', '-q', '1', '-E']);
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: 'u-1',
    username: 'bob',
    password: SECRET,
    protocolVersion: 4,
    keepalive: 30,
    reconnectPeriod: 0,
  });
  await c.subscribeAsync('x/y', { qos: 1 });
  await c.unsubscribeAsync('x/y');
  await c.endAsync();
  const gone = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: 'u-2',
    protocolVersion: 4,
    username: 'bob',
    password: SECRET,
    keepalive: 30,
    reconnectPeriod: 0,
  });
  gone.stream.destroy(); // no DISCONNECT: "closed its connection"
  await new Promise((r) => setTimeout(r, 300));
  await new Promise<void>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.end('GARBAGE'));
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
  await new Promise((r) => setTimeout(r, 300));
}

/** The lines of the client actions, comparable across brokers. */
function actionLines(output: string): string[] {
  let lines = output.split('\n').map((l) => l.replace(/^\d+: /, 'T: '));
  lines = lines.slice(lines.findLastIndex((l) => / version \S+ running$/.test(l)) + 1);
  // the helper's port probe (connect, close before CONNECT) that waitForPort makes; mqprobe's start is awaited on its "running" line instead
  const probe = lines.findIndex((l) => l === 'T: Client <unknown> closed its connection.');
  if (probe > 0 && /^T: New connection from/.test(lines[probe - 1])) lines.splice(probe - 1, 2);
  return lines
    .filter((l) => l.startsWith('T: ') && !/ version \S+ terminating|received, shutting down|^T: (capture|detect|beat)/.test(l))
    .map((l) => l.replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:P').replace(/on port \d+/, 'on port P'));
}

t.test('log lines for the same client actions: mqprobe and Mosquitto 2.0.11 -v agree', async (t) => {
  const mosq = await startMosquitto(t, 'allow_anonymous false\n', {});
  const pw = join(mosq.dir, 'passwd');
  writeFileSync(pw, '');
  spawnSync('mosquitto_passwd', ['-b', pw, 'bob', SECRET]);
  chmodSync(pw, 0o644);
  writeFileSync(mosq.confFile, `listener ${mosq.port} 127.0.0.1\nallow_anonymous false\npassword_file ${pw}\n`);
  await mosq.stop('SIGTERM');
  await mosq.start();
  await clientActions(mosq.port);
  await until(() => /Client <unknown> disconnected due to protocol error/.test(mosq.output()), 10_000, 'mosquitto logged the garbage');
  const expected = actionLines(mosq.output());

  const port = await freePort();
  const conf = join(mosq.dir, 'mqprobe.conf');
  writeFileSync(
    conf,
    `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${pw}\nlog_type all\nlog_dest stdout\ndetect off\n`,
  );
  const p: BrokerProcess = spawnCli(t, ['-c', conf]);
  await until(() => / running$/m.test(p.output()), 15_000, 'mqprobe running');
  await clientActions(port);
  await until(() => /Client <unknown> disconnected due to protocol error/.test(p.output()), 10_000, 'mqprobe logged the garbage');
  const got = actionLines(p.output());

  t.ok(expected.length >= 30, `Mosquitto logged the actions (${expected.length} lines)`);
  t.strictSame(got, expected, 'same lines in the same order');
  t.notMatch(p.output(), SECRET, 'no password in any line');
  p.child.kill('SIGTERM');
  await p.exited;
  t.match(p.output(), /^\d+: mqprobe version \S+ terminating$/m, 'the terminating line');
});

t.test('a failed TLS handshake: the same line as Mosquitto 2.0.11', async (t) => {
  const pki = makePki();
  chmodSync(pki.dir, 0o755);
  for (const f of [pki.serverCert, pki.serverKey]) chmodSync(f, 0o644);
  const tlsConf = `certfile ${pki.serverCert}\nkeyfile ${pki.serverKey}\nallow_anonymous true\n`;
  const plainConnect = (port: number) =>
    new Promise<void>((resolve) => {
      // an MQTT CONNECT where a TLS ClientHello is expected
      const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.from('100c00044d5154540402003c0000', 'hex')));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
  const failed = /^\d+: (Client connection from 127\.0\.0\.1 failed: .*)$/m;
  // the helper's port probe (connect, close) also makes Mosquitto log an "unexpected eof" failure: leave it out
  const lines = (out: string) =>
    [...out.matchAll(new RegExp(failed.source, 'gm'))].map((m) => m[1]).filter((l) => !/unexpected eof/.test(l));
  const mosq = await startMosquitto(t, tlsConf);
  await plainConnect(mosq.port);
  // Mosquitto logs "OpenSSL Error[0]: … wrong version number" first and the failure line after it: wait for that one
  await until(() => lines(mosq.output()).length > 0, 10_000, 'mosquitto line');

  const port = await freePort();
  const conf = join(tempDir(), 'mqprobe.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\n${tlsConf}log_dest stdout\ndetect off\n`);
  const p = spawnCli(t, ['-c', conf]);
  await until(() => / running$/m.test(p.output()), 15_000, 'mqprobe running');
  await plainConnect(port);
  await until(() => lines(p.output()).length > 0, 10_000, 'mqprobe line');
  t.strictSame(lines(p.output()), lines(mosq.output()), 'same words and OpenSSL error string');
  t.notMatch(p.output(), /New connection from/, 'no "New connection" line: the connection never got past TLS (as in Mosquitto)');
});
