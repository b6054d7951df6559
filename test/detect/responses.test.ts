import t, { type Test } from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { freePort, spawnCli, startTestBroker, tempDir, waitForPort } from '../helpers/broker.js';
import { startRedis } from '../helpers/redis.js';
import { connectClient, collect, until } from '../helpers/mqtt.js';
import { fixture } from '../helpers/paths.js';

const PASSWD = fixture('mosquitto', 'passwd');
const ALICE = 'alice-secret';
const BOB = 'b0b pass with spaces';

/** One CONNECT as alice; resolves with the CONNACK return code (0 accepted), or 'closed' when the broker closed without one. */
async function login(url: string, password: string, clientId = 'guesser', protocolVersion: 4 | 5 = 4): Promise<number | 'closed'> {
  const c = mqtt.connect(url, { clientId, username: 'alice', password, protocolVersion, reconnectPeriod: 0, connectTimeout: 5000 });
  const code = await new Promise<number | 'closed'>((resolve) => {
    c.once('connect', () => resolve(0));
    c.once('error', (err) => resolve((err as { code?: number }).code ?? -1));
    c.once('close', () => resolve('closed'));
  });
  c.end(true);
  return code;
}

const guessTen = async (t: Test, url: string) => {
  for (let i = 0; i < 10; i++) t.equal(await login(url, `wrong-${i}`), 5, `guess ${i} refused with CONNACK 5`);
};

const events = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map(
      (l) =>
        JSON.parse(l) as {
          message: string;
          event: { action: string; reason?: string };
          mqtt?: { client_id?: string; reason_code?: number; protocol_version?: number };
          mqprobe?: { response?: Record<string, unknown>; closed_before_connack?: boolean };
        },
    );

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

const conf = (dir: string, extra = '') =>
  [
    'listener 0 127.0.0.1',
    'http_listener 0 127.0.0.1',
    'allow_anonymous false',
    `password_file ${PASSWD}`,
    `capture_sink file ${join(dir, 'capture.ndjson')}`,
    'detect_response auth-brute-force ban 10m',
    'detect_admin_user bob',
    'detect_allow client:soc',
    extra,
  ].join('\n');

t.test('live: password guessing gets banned; the right password is refused during the ban; DELETE /bans lifts it', async (t) => {
  const dir = tempDir();
  const { mqttUrl, httpPort } = await startTestBroker(t, conf(dir), { dir });
  const watcher = await connectClient(t, mqttUrl, { clientId: 'soc', username: 'bob', password: BOB });
  const sys = collect(watcher);
  await watcher.subscribeAsync('$SYS/broker/bans', { qos: 0 });
  // alice's live session from the same address ends with the ban
  const victim = await connectClient(t, mqttUrl, { clientId: 'alice-live', username: 'alice', password: ALICE });
  const victimClosed = new Promise<void>((r) => victim.once('close', () => r()));

  await guessTen(t, mqttUrl);
  await until(() => sys.some((m) => m.payload.toString().includes('ip 127.0.0.1')), 5000, 'the ban on $SYS/broker/bans');
  await victimClosed;
  t.pass('the live session of the banned address was disconnected');
  t.equal(await login(mqttUrl, ALICE, 'alice-2'), 5, 'the right password from the banned address is refused (CONNACK 5)');

  const http = `http://127.0.0.1:${httpPort}`;
  t.equal((await fetch(`${http}/bans`)).status, 401, 'GET /bans without credentials: 401');
  t.equal((await fetch(`${http}/bans`, { headers: { authorization: basic('alice', ALICE) } })).status, 403, 'a non-admin user: 403');
  t.equal((await fetch(`${http}/bans`, { headers: { authorization: basic('bob', 'wrong') } })).status, 401, 'a wrong admin password: 401');
  const listed = (await (await fetch(`${http}/bans`, { headers: { authorization: basic('bob', BOB) } })).json()) as {
    bans: { entity: string; rule: string; until: string }[];
  };
  t.same(
    listed.bans.map((b) => [b.entity, b.rule]),
    [['ip 127.0.0.1', 'auth-brute-force']],
  );
  t.ok(Date.parse(listed.bans[0].until) > Date.now() + 9 * 60_000, 'banned for 10 minutes');
  // both CLI runs at once: each starts a Node process
  const cli = spawnCli(t, ['bans', 'list', '--url', http, '-u', 'bob'], { MQPROBE_HTTP_PASSWORD: BOB });
  const cliMissing = spawnCli(t, ['bans', 'remove', 'ip:10.9.9.9', '--url', http, '-u', 'bob'], { MQPROBE_HTTP_PASSWORD: BOB });
  const [listed0, missing] = await Promise.all([cli.exited, cliMissing.exited]);
  t.equal(listed0, 0, 'mqprobe bans list exits 0');
  t.match(cli.output(), /^ip 127\.0\.0\.1\tauth-brute-force\t\d{4}-/m, 'mqprobe bans list prints the ban');
  t.equal(missing, 1, 'mqprobe bans remove of no ban exits 1');
  t.match(cliMissing.output(), /404 no ban of ip 10\.9\.9\.9/);
  const bad = await fetch(`${http}/bans/${encodeURIComponent('topic x')}`, {
    method: 'DELETE',
    headers: { authorization: basic('bob', BOB) },
  });
  t.equal(bad.status, 400, 'an entity that is not ip/client/user: 400');
  const none = await fetch(`${http}/bans/ip:10.9.9.9`, { method: 'DELETE', headers: { authorization: basic('bob', BOB) } });
  t.equal(none.status, 404, 'no such ban: 404');
  const lifted = await fetch(`${http}/bans/ip:127.0.0.1`, { method: 'DELETE', headers: { authorization: basic('bob', BOB) } });
  t.equal(lifted.status, 200, 'DELETE /bans/ip:127.0.0.1 lifts it');
  t.equal(await login(mqttUrl, ALICE, 'alice-3'), 0, 'after the lift the right password is accepted');

  await until(() => events(join(dir, 'capture.ndjson')).some((e) => e.event.action === 'ban-lifted'), 5000, 'ban-lifted in the capture');
  const ev = events(join(dir, 'capture.ndjson'));
  const ban = ev.find((e) => e.event.action === 'response-ban');
  t.match(ban?.mqprobe?.response, { entity: 'ip 127.0.0.1', action: 'ban', duration_s: 600 }, 'response-ban recorded');
  t.ok((ban?.mqprobe?.response?.disconnected as number) >= 1, 'it says how many sessions it disconnected');
  t.ok(
    ev.some((e) => e.event.action === 'connection-refused' && e.event.reason === 'banned'),
    'connection-refused with reason banned recorded',
  );
  t.notOk(JSON.stringify(ev).includes(ALICE), 'no password in the capture');
});

t.test('live: an allow-listed source alerts but is not banned; the log mode records what it would do', async (t) => {
  const dir = tempDir();
  const { mqttUrl, broker } = await startTestBroker(t, conf(dir, 'detect_allow 127.0.0.0/8'), { dir });
  await guessTen(t, mqttUrl);
  t.equal(await login(mqttUrl, ALICE, 'alice-ok'), 0, 'allow-listed: the right password is still accepted');
  await broker.capture.stop(); // flushes the file
  const ev = events(join(dir, 'capture.ndjson'));
  t.ok(
    ev.some((e) => e.event.action === 'alert-raised'),
    'the alert is raised',
  );
  t.notOk(
    ev.some((e) => e.event.action === 'response-ban'),
    'no ban',
  );

  const dir2 = tempDir();
  const dry = await startTestBroker(t, conf(dir2, 'detect_response_mode log'), { dir: dir2 });
  await guessTen(t, dry.mqttUrl);
  await until(() => events(join(dir2, 'capture.ndjson')).some((e) => e.event.action === 'response-ban'), 5000, 'the dry-run event');
  t.equal(await login(dry.mqttUrl, ALICE, 'alice-ok'), 0, 'log mode: nothing banned');
  const e = events(join(dir2, 'capture.ndjson')).find((x) => x.event.action === 'response-ban');
  t.equal(e?.mqprobe?.response?.dry_run, true, 'marked as a dry run');
});

t.test('live: detect_ban_answer close closes the banned connection before any CONNACK, and its event claims no CONNACK code', async (t) => {
  const dir = tempDir();
  const { mqttUrl, broker } = await startTestBroker(t, conf(dir, 'detect_ban_answer close'), { dir });
  await guessTen(t, mqttUrl);
  await until(() => events(join(dir, 'capture.ndjson')).some((e) => e.event.action === 'response-ban'), 5000, 'the ban');
  t.equal(await login(mqttUrl, ALICE, 'alice-close'), 'closed', 'MQTT 3.1.1: closed without a CONNACK');
  t.equal(await login(mqttUrl, ALICE, 'alice-close-5', 5), 'closed', 'MQTT 5: closed without a CONNACK');
  await broker.capture.stop(); // flushes the file
  const closed = events(join(dir, 'capture.ndjson')).filter((e) => e.event.action === 'connection-refused' && e.event.reason === 'banned');
  t.same(
    closed.map((e) => [e.mqtt?.client_id, e.mqtt?.protocol_version]),
    [
      ['alice-close', 4],
      ['alice-close-5', 5],
    ],
    'one connection-refused (reason banned) for each closed connection, MQTT 5 included',
  );
  for (const e of closed) {
    t.equal(e.mqtt?.reason_code, undefined, `${e.mqtt?.client_id}: no mqtt.reason_code (no CONNACK was sent)`);
    t.equal(e.mqprobe?.closed_before_connack, true, `${e.mqtt?.client_id}: mqprobe.closed_before_connack`);
    t.match(e.message, /refused: banned \(closed before CONNACK\)$/, `${e.mqtt?.client_id}: the message says so`);
  }
});

t.test('live: a ban survives a restart with persistence', async (t) => {
  const dir = tempDir();
  const text = conf(dir, `persistence true\npersistence_location ${dir}/`);
  const first = await startTestBroker(t, text, { dir });
  await guessTen(t, first.mqttUrl);
  await until(() => events(join(dir, 'capture.ndjson')).some((e) => e.event.action === 'response-ban'), 5000, 'the ban');
  await first.broker.close();
  const second = await startTestBroker(t, text, { dir });
  t.equal(await login(second.mqttUrl, ALICE, 'alice-again'), 5, 'after the restart the ban still refuses');
});

t.test('live: two processes on one Redis share a ban', async (t) => {
  const redis = await startRedis(t);
  const dir = tempDir();
  const here = await startTestBroker(t, conf(dir, `persistence_redis_url ${redis.url}`), { dir });
  const otherDir = tempDir();
  const port = await freePort();
  const otherConf = join(otherDir, 'other.conf');
  writeFileSync(
    otherConf,
    conf(otherDir, `persistence_redis_url ${redis.url}`)
      .replace('listener 0 127.0.0.1', `listener ${port} 127.0.0.1`)
      .replace('http_listener 0 127.0.0.1\n', ''),
  );
  const other = spawnCli(t, ['-c', otherConf]);
  await waitForPort(port);
  const otherUrl = `mqtt://127.0.0.1:${port}`;
  t.equal(await login(here.mqttUrl, ALICE, 'before'), 0, 'before: the right password is accepted here');
  const victim = await connectClient(t, here.mqttUrl, { clientId: 'alice-here', username: 'alice', password: ALICE });
  const victimClosed = new Promise<void>((r) => victim.once('close', () => r()));
  await guessTen(t, otherUrl);
  await victimClosed;
  t.pass("the ban made in the other process ended this process's live session of the address");
  let code: number | 'closed' = 0;
  for (let i = 0; i < 100 && code !== 5; i++) {
    code = await login(here.mqttUrl, ALICE, `after-${i}`);
    if (code !== 5) await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(code, 5, 'the ban made in the other process refuses here');
  other.child.kill('SIGTERM');
  await other.exited;
});
