import t from 'tap';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { freePort, spawnCli, tempDir } from '../helpers/broker.js';
import { until } from '../helpers/mqtt.js';

const NOBODY = 65534;
const ids = (pid: number) => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const uid = status
    .match(/^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m)!
    .slice(1)
    .map(Number);
  const gid = status
    .match(/^Gid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m)!
    .slice(1)
    .map(Number);
  return { uid, gid };
};

/** A folder user nobody can reach (tempDir is 0700 root), with a config for it. */
function setup(conf: (dir: string, port: number) => string, port: number): { dir: string; file: string } {
  const dir = tempDir('mqprobe-user-');
  chmodSync(dir, 0o755);
  const file = join(dir, 'mqprobe.conf');
  writeFileSync(file, conf(dir, port));
  return { dir, file };
}

const asRoot = process.geteuid?.() === 0;

t.test(
  'started as root with `user nobody`: runs as nobody after binding, and persistence still saves',
  { skip: asRoot ? false : 'needs root (CI runs as root)' },
  async (t) => {
    const port = await freePort();
    const { dir, file } = setup(
      (d, p) =>
        `listener ${p} 127.0.0.1\nallow_anonymous true\nuser nobody\npersistence true\npersistence_location ${join(d, 'state')}\nautosave_interval 1\nlog_dest stdout\ndetect off\n`,
      port,
    );
    const p = spawnCli(t, ['-c', file]);
    await until(() => / running$/m.test(p.output()), 15_000, 'running');
    const { uid, gid } = ids(p.child.pid!);
    t.strictSame(uid, [NOBODY, NOBODY, NOBODY, NOBODY], 'real, effective, saved and fs uid are nobody');
    t.strictSame(gid, [NOBODY, NOBODY, NOBODY, NOBODY], 'and the gids');
    t.equal(statSync(join(dir, 'state')).uid, NOBODY, 'the persistence directory it created belongs to nobody');
    t.notMatch(p.output(), /should not be run as root/, 'no root warning');

    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'keeper', reconnectPeriod: 0 });
    await c.publishAsync('kept/1', 'still here', { retain: true, qos: 1 });
    await c.endAsync();
    p.child.kill('SIGTERM');
    t.equal(await p.exited, 0, 'clean exit');
    const snapshot = join(dir, 'state', 'mqprobe.db');
    t.ok(existsSync(snapshot), 'snapshot written after dropping root');
    t.equal(statSync(snapshot).uid, NOBODY, 'by nobody');
    t.match(readFileSync(snapshot, 'utf8'), /kept\/1/, 'with the retained message');
  },
);

t.test("a user that does not exist stops the start with Mosquitto's error", { skip: asRoot ? false : 'needs root' }, async (t) => {
  const port = await freePort();
  const { file } = setup(
    (_d, p) => `listener ${p} 127.0.0.1\nallow_anonymous true\nuser no-such-user-xyz\nlog_dest stdout\ndetect off\n`,
    port,
  );
  const p = spawnCli(t, ['-c', file]);
  t.not(await p.exited, 0, 'exits non-zero');
  t.match(p.output(), /Unable to drop privileges to 'no-such-user-xyz' because this user does not exist\./);
});

t.test('`user root` keeps root, with the warning', { skip: asRoot ? false : 'needs root' }, async (t) => {
  const port = await freePort();
  const { file } = setup((_d, p) => `listener ${p} 127.0.0.1\nallow_anonymous true\nuser root\nlog_dest stdout\ndetect off\n`, port);
  const p = spawnCli(t, ['-c', file]);
  await until(() => / running$/m.test(p.output()), 15_000, 'running');
  t.equal(ids(p.child.pid!).uid[1], 0, 'still root');
  t.match(p.output(), /Warning: mqprobe should not be run as root\/administrator\./);
  p.child.kill('SIGTERM');
  await p.exited;
});

t.test(
  'an existing capture_spool_dir: the spool folder a sink makes there at start belongs to the user, and spooling works',
  { skip: asRoot ? false : 'needs root (CI runs as root)' },
  async (t) => {
    const port = await freePort();
    const closed = await freePort(); // nothing listens: the logstash sink spools everything
    const { dir, file } = setup(
      (d, p) =>
        `listener ${p} 127.0.0.1\nallow_anonymous true\nuser nobody\ncapture_sink logstash tcp://127.0.0.1:${closed}\ncapture_spool_dir ${join(d, 'spool')}\nlog_dest stdout\ndetect off\n`,
      port,
    );
    const spool = join(dir, 'spool');
    mkdirSync(spool, { mode: 0o777 });
    chmodSync(spool, 0o777);
    const before = join(spool, 'kept-by-root');
    writeFileSync(before, 'x');
    const p = spawnCli(t, ['-c', file]);
    await until(() => / running$/m.test(p.output()), 15_000, 'running');
    const made = readdirSync(spool).filter((f) => f !== 'kept-by-root' && statSync(join(spool, f)).isDirectory());
    t.ok(made.length > 0, `the sink made its spool folder (${made.join(', ')})`);
    for (const f of made) t.equal(statSync(join(spool, f)).uid, NOBODY, `${f} belongs to nobody`);
    t.equal(statSync(before).uid, 0, 'what was there before keeps its owner');
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'spooled', reconnectPeriod: 0 });
    await c.publishAsync('spooled/1', 'x', { qos: 1 });
    await c.endAsync();
    p.child.kill('SIGTERM');
    t.equal(await p.exited, 0, 'clean exit');
    // (tap's own exit hook in the child, as nobody, cannot write .tap/processinfo: not the broker's)
    const refused = p
      .output()
      .split('\n')
      .filter((l) => /EACCES|permission denied/i.test(l) && l.includes(spool));
    t.same(refused, [], 'no write to the spool was refused');
    const spooled = made.flatMap((f) => readdirSync(join(spool, f)).map((g) => join(spool, f, g)));
    t.ok(
      spooled.some((f) => statSync(f).size > 0 && statSync(f).uid === NOBODY),
      'events spooled to disk by nobody',
    );
  },
);
