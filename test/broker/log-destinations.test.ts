import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { freePort, spawnCli, tempDir, waitForPort, type Teardown } from '../helpers/broker.js';
import { collect, until } from '../helpers/mqtt.js';
import { configError } from '../helpers/config.js';
import { syslogNgArgs } from '../capture/syslog-ng.js';

const SECRET = 'pa55-do-not-log';

/** Starts the CLI on `conf` (a listener line is added) and waits for its "running" line (or for its port when that line is filtered out). */
async function start(t: Teardown, conf: string, quiet = false): Promise<{ port: number; output: () => string; stop: () => Promise<void> }> {
  const dir = tempDir();
  const port = await freePort();
  const file = join(dir, 'mqprobe.conf');
  writeFileSync(file, `listener ${port} 127.0.0.1\nallow_anonymous true\ndetect off\n${conf}`);
  const p = spawnCli(t, ['-c', file]);
  if (quiet) await waitForPort(port);
  else await until(() => /version \S+ running/.test(p.output()), 15_000, 'running');
  return { port, output: p.output, stop: async () => (p.child.kill('SIGTERM'), void (await p.exited)) };
}

async function connectAndLeave(port: number, extra: mqtt.IClientOptions = {}): Promise<void> {
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'dev-1', protocolVersion: 4, reconnectPeriod: 0, ...extra });
  await c.subscribeAsync('s/#');
  await c.endAsync();
}

t.test(
  'log_dest file: Mosquitto lines appended (opened before root is dropped); log_timestamp_format; log_type filters by Mosquitto type',
  async (t) => {
    const dir = tempDir();
    const file = join(dir, 'mosquitto.log');
    writeFileSync(file, 'an older line\n');
    const b = await start(t, `log_dest file ${file}\nlog_timestamp_format %Y-%m-%dT%H:%M:%S\nlog_type notice\nlog_type subscribe\n`, true);
    await connectAndLeave(b.port);
    await until(() => /Client dev-1 disconnected\./.test(readFileSync(file, 'utf8')), 10_000, 'disconnect line');
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    t.equal(lines[0], 'an older line', 'appended, not truncated');
    const body = lines.slice(1);
    for (const l of body) t.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: /, `strftime timestamp: ${l}`);
    const text = body.map((l) => l.slice(21));
    t.ok(
      text.some((l) => /^New client connected from 127\.0\.0\.1:\d+ as dev-1 \(p2, c1, k60\)\.$/.test(l)),
      'notice: connect line',
    );
    t.ok(text.includes('dev-1 0 s/#'), 'subscribe line');
    t.notOk(
      text.some((l) => /version \S+ starting|Sending CONNACK/.test(l)),
      'information and debug lines filtered out',
    );
    await b.stop();
  },
);

t.test('log_timestamp false, and log_format json keeps pino lines', async (t) => {
  const plain = await start(t, 'log_dest stdout\nlog_timestamp false\n');
  await connectAndLeave(plain.port);
  await until(() => /^Client dev-1 disconnected\.$/m.test(plain.output()), 10_000, 'line without a timestamp');
  t.match(plain.output(), /^mqprobe version \S+ running$/m);
  await plain.stop();

  const json = await start(t, 'log_dest stdout\nlog_format json\n');
  await connectAndLeave(json.port);
  await until(() => /Client dev-1 disconnected/.test(json.output()), 10_000, 'json line');
  const rec = json
    .output()
    .split('\n')
    .filter((l) => l.includes('Client dev-1 disconnected'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)[0];
  t.equal(rec.msg, 'Client dev-1 disconnected.');
  t.equal(rec.log_type, 'notice');
  t.equal(rec.level, 30);
  t.equal(rec.name, 'mqprobe', "the root logger's name");
  t.equal(typeof rec.pid, 'number', 'and its pid');
  await json.stop();
});

t.test('log_dest topic: lines published on $SYS/broker/log/<type>, Unix time, no debug', async (t) => {
  const b = await start(t, 'log_dest topic\nlog_dest stdout\nlog_type all\n');
  const watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, { clientId: 'watcher', reconnectPeriod: 0 });
  t.teardown(() => watcher.endAsync());
  const got = collect(watcher);
  await watcher.subscribeAsync('$SYS/broker/log/#');
  await connectAndLeave(b.port, { username: 'u', password: SECRET });
  await until(() => got.some((m) => /Client dev-1 disconnected\./.test(m.payload.toString())), 10_000, 'published disconnect');
  const seen = got.map((m) => `${m.topic} ${m.payload.toString().replace(/^\d+: /, 'T: ')}`);
  t.ok(seen.includes('$SYS/broker/log/M/subscribe T: dev-1 0 s/#'), 'subscribe on M/subscribe');
  t.ok(
    seen.some((l) => /^\$SYS\/broker\/log\/N T: New client connected from 127\.0\.0\.1:\d+ as dev-1 \(p2, c1, k60, u'u'\)\.$/.test(l)),
    'connect on N',
  );
  t.notOk(
    seen.some((l) => l.startsWith('$SYS/broker/log/D')),
    'debug lines are not published (Mosquitto does not)',
  );
  // stdout lines wait up to 20 ms to share a write; the topic has them at once
  await until(() => /Sending CONNACK to dev-1/.test(b.output()), 10_000, 'debug line on stdout');
  t.ok(/Sending CONNACK to dev-1/.test(b.output()), 'but they are on stdout');
  t.notOk(seen.some((l) => l.includes(SECRET)) || b.output().includes(SECRET), 'no password anywhere');
  await b.stop();
});

t.test('log_dest syslog: real syslog-ng on a unix-dgram socket gets the lines with facility and severity', async (t) => {
  const dir = tempDir('mqprobe-syslog-');
  chmodSync(dir, 0o755); // like /dev: the syslog helper runs as the user the broker drops to
  const sock = join(dir, 'log.sock');
  const out = join(dir, 'out.log');
  mkdirSync(join(dir, 'state'));
  writeFileSync(
    join(dir, 'syslog-ng.conf'),
    `@version: 3.38
options { stats_freq(0); flush_lines(0); };
source s { unix-dgram("${sock}"); };
destination d { file("${out}" template("$FACILITY.$PRIORITY $PROGRAM[$PID]: $MSG\\n")); };
log { source(s); destination(d); };
`,
  );
  const ng = spawn('syslog-ng', syslogNgArgs(join(dir, 'syslog-ng.conf'), join(dir, 'state')), { stdio: 'ignore' });
  t.teardown(() => void ng.kill('SIGKILL'));
  await until(() => existsSync(sock), 10_000, 'syslog-ng socket');
  const b = await start(t, `log_dest syslog\nlog_dest stdout\nlog_facility 3\nlog_syslog_socket ${sock}\n`);
  await connectAndLeave(b.port);
  await until(() => existsSync(out) && /Client dev-1 disconnected\./.test(readFileSync(out, 'utf8')), 10_000, 'syslog line');
  const lines = readFileSync(out, 'utf8');
  t.match(
    lines,
    /^local3\.notice mqprobe\[\d+\]: New client connected from 127\.0\.0\.1:\d+ as dev-1 \(p2, c1, k60\)\.$/m,
    'facility local3, severity notice, no timestamp in the message',
  );
  t.match(lines, /^local3\.info mqprobe\[\d+\]: mqprobe version \S+ running$/m, 'information → info');
  await b.stop();
});

t.test('log_dest syslog without a socket: one warning, lines on stderr', async (t) => {
  const b = await start(t, `log_dest syslog\nlog_syslog_socket ${join(tempDir(), 'none.sock')}\n`);
  t.match(b.output(), /log_dest syslog: no syslog socket at .*none\.sock; syslog lines go to stderr instead/);
  t.match(b.output(), /^mqprobe version \S+ running$/m);
  await b.stop();
});

t.test('a log file that cannot be opened stops the start with one line', async (t) => {
  const port = await freePort();
  const file = join(tempDir(), 'mqprobe.conf');
  writeFileSync(file, `listener ${port} 127.0.0.1\nlog_dest file /dev/null/no-such-dir/mqprobe.log\n`);
  const p = spawnCli(t, ['-c', file]);
  t.not(await p.exited, 0);
  t.match(p.output(), /^mqprobe: log_dest: .*no-such-dir/m);
  t.notMatch(p.output(), /\n\s+at /, 'no stack trace');
});

t.test('hostile log settings are config errors naming file and line', async (t) => {
  configError(
    t,
    'log_timestamp_format %Y %Q\n',
    /log_timestamp_format: strftime conversion %Q not supported/,
    'unknown strftime conversion',
  );
  configError(t, 'log_facility 9\n', /log_facility: expected an integer in 0\.\.7/, 'facility out of range');
  configError(t, 'log_format xml\n', /log_format: expected one of mosquitto\|json/, 'unknown format');
});

t.test('a client id with a newline cannot forge a second log line', async (t) => {
  const b = await start(t, 'log_dest stdout\n');
  const c = await mqtt
    .connectAsync(`mqtt://127.0.0.1:${b.port}`, {
      clientId: 'x\n1733355000: Client admin disconnected.',
      protocolVersion: 4,
      reconnectPeriod: 0,
    })
    .catch(() => undefined);
  await c?.endAsync();
  await new Promise((r) => setTimeout(r, 500));
  t.notMatch(b.output(), /^1733355000: Client admin/m, 'no forged line');
  await b.stop();
});

t.test("keepalive expiry: Mosquitto's timeout line", async (t) => {
  const b = await start(t, 'log_dest stdout\n');
  const s = net.connect(b.port, '127.0.0.1', () =>
    s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'ka-1', clean: true, keepalive: 1 })),
  );
  s.on('error', () => undefined);
  t.teardown(() => void s.destroy());
  // silent after CONNECT: keepalive 1 s expires after 1.5 s
  await until(() => /^\d+: Client ka-1 has exceeded timeout, disconnecting\.$/m.test(b.output()), 10_000, 'timeout line');
  t.match(b.output(), /New client connected from 127\.0\.0\.1:\d+ as ka-1 \(p2, c1, k1\)\./);
  await b.stop();
});
