import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/paths.js';
import { tempDir, type Teardown } from '../helpers/broker.js';
import { COMMANDS, preflightProblem } from '../helpers/system-commands.js';

/** A folder holding an executable stand-in for each named command. */
function binDir(t: Teardown, commands: string[]): string {
  const dir = tempDir('mqprobe-preflight-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const c of commands) writeFileSync(join(dir, c), '#!/bin/sh\n', { mode: 0o755 });
  return dir;
}

const all = Object.keys(COMMANDS);
const except = (...gone: string[]) => all.filter((c) => !gone.includes(c));

/** test/preflight.ts as `npm test` runs it, with the given PATH. */
function preflight(path: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'test', 'preflight.ts')], {
    cwd: repoRoot,
    env: { PATH: path },
    encoding: 'utf8',
  });
}

t.test('on this machine every system command the tests run is found and the preflight passes silently', async (t) => {
  const r = preflight(process.env.PATH ?? '');
  t.equal(r.stderr, '');
  t.equal(r.status, 0);
});

t.test('missing packages are named once each, on one line, with the command that installs them', async (t) => {
  const sbin = binDir(t, []);
  t.equal(
    preflightProblem(binDir(t, except('mosquitto_pub', 'mosquitto_sub', 'redis-server')), [sbin]),
    'missing system packages: mosquitto-clients redis-server — run: sudo bash .ci/run',
  );
  t.equal(preflightProblem(binDir(t, all), [sbin]), '', 'nothing missing: no problem');
});

t.test('a file that is not executable, or a folder, does not count as the command', async (t) => {
  const dir = binDir(t, except('openssl', 'redis-server'));
  writeFileSync(join(dir, 'openssl'), '#!/bin/sh\n', { mode: 0o644 });
  mkdirSync(join(dir, 'redis-server'));
  t.equal(preflightProblem(dir, [binDir(t, [])]), 'missing system packages: redis-server openssl — run: sudo bash .ci/run');
});

t.test('a daemon installed in sbin but not on PATH is told apart from a missing package', async (t) => {
  const sbin = binDir(t, ['mosquitto', 'syslog-ng']);
  t.equal(
    preflightProblem(binDir(t, except('mosquitto', 'syslog-ng', 'java')), [sbin]),
    `missing system packages: openjdk-17-jdk-headless — run: sudo bash .ci/run; not on PATH: mosquitto syslog-ng (installed in sbin) — run: PATH="$PATH:${sbin}" npm test`,
  );
});

t.test('with nothing on PATH, npm test stops at once with one line and a non-zero exit', async (t) => {
  const started = Date.now();
  const r = preflight(binDir(t, []));
  t.equal(r.status, 1);
  t.equal(r.stdout, '');
  t.match(r.stderr, /^missing system packages: .*\bredis-server\b.* — run: sudo bash \.ci\/run(; not on PATH: .*)?\n$/);
  t.equal(r.stderr.split('\n').length, 2, 'one line');
  t.ok(Date.now() - started < 10_000, 'at once');
});
