import t from 'tap';
import { readFileSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { validate } from 'dockerfile-utils';
import { repoRoot } from '../helpers/paths.js';
import { freePort, waitForPort, tempDir } from '../helpers/broker.js';
import { connectClient } from '../helpers/mqtt.js';

const run = promisify(execFile);
const docker = (...p: string[]) => join(repoRoot, 'docker', ...p);

t.test("compose files validate with Debian's docker-compose (v1 syntax)", async (t) => {
  for (const [file, profile] of [
    ['compose.yml', undefined],
    ['compose.yml', 'scale'],
    ['compose.broker.yml', undefined],
  ] as const) {
    const args = ['--env-file', docker('.env.example'), '-f', docker(file), ...(profile ? ['--profile', profile] : []), 'config'];
    const { stdout } = await run('docker-compose', args);
    t.match(stdout, /mqprobe:/, `${file}${profile ? ` --profile ${profile}` : ''} is valid`);
  }
  const { stdout } = await run('docker-compose', [
    '--env-file',
    docker('.env.example'),
    '-f',
    docker('compose.yml'),
    '--profile',
    'scale',
    'config',
    '--services',
  ]);
  t.same(stdout.trim().split('\n').sort(), [
    'elasticsearch',
    'kibana',
    'kibana-password',
    'logstash',
    'mqprobe',
    'mqprobe-replica',
    'redis',
    'setup',
  ]);
  await t.rejects(
    run('docker-compose', ['-f', docker('compose.yml'), 'config'], { env: { PATH: process.env.PATH } }),
    'without docker/.env the passwords are required, not defaulted',
  );
});

t.test('the Dockerfile lints clean and follows the image rules', async (t) => {
  const text = readFileSync(docker('Dockerfile'), 'utf8');
  const problems = validate(text);
  t.same(
    problems.map((p) => `${p.range.start.line + 1}: ${p.message}`),
    [],
    'no lint problems (dockerfile-utils)',
  );
  // Node 26, the active LTS line (Node 20's support ended 2026-04-30); CI runs the version-dependent tests on it
  t.match(text, /^FROM node:26-bookworm-slim AS build$/m, 'multi-stage: build stage');
  t.match(text, /^FROM node:26-bookworm-slim$/m, 'runtime stage on the same line');
  t.match(text, /^USER mqprobe$/m, 'runs as a non-root user');
  t.match(text, /ENTRYPOINT \["\/usr\/bin\/tini", "--"/, 'tini is PID 1 so SIGTERM reaches the broker');
  t.match(text, /^HEALTHCHECK .*\n.*\/healthz/m, 'health check against /healthz');
  t.match(text, /^EXPOSE 1883 8883 8080 8081 9090$/m);
  t.ok(readFileSync(join(repoRoot, '.dockerignore'), 'utf8').includes('node_modules'), '.dockerignore keeps node_modules out');
});

t.test('the systemd unit verifies (systemd-analyze), hardened', async (t) => {
  const unit = readFileSync(join(repoRoot, 'deploy', 'systemd', 'mqprobe.service'), 'utf8');
  for (const k of [
    'DynamicUser=yes',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'CapabilityBoundingSet=\n',
    'ReadWritePaths=/var/lib/mqprobe /var/log/mqprobe',
    'ExecReload=/bin/kill -HUP $MAINPID',
  ]) {
    t.ok(unit.includes(k), k.trim());
  }
  // mqprobe is not installed in /usr/bin here: verify a copy whose ExecStart names an existing binary.
  const dir = tempDir();
  const copy = join(dir, 'mqprobe.service');
  writeFileSync(copy, unit.replace('ExecStart=/usr/bin/mqprobe', `ExecStart=${process.execPath}`));
  const { stderr } = await run('systemd-analyze', ['verify', copy]);
  t.equal(stderr.trim(), '', 'systemd-analyze verify reports nothing');
});

t.test("the image's entrypoint and default config run a working broker (outside Docker)", async (t) => {
  const dir = tempDir();
  const [mqtt, ws, http] = [await freePort(), await freePort(), await freePort()];
  // The image's config with its paths and ports moved into a temp dir (same keys, same values otherwise).
  const conf = readFileSync(docker('mqprobe.conf'), 'utf8')
    .replaceAll('/mqprobe/', `${dir}/`)
    .replace(/^listener 1883$/m, `listener ${mqtt} 127.0.0.1`)
    .replace(/^listener 8080$/m, `listener ${ws} 127.0.0.1`)
    .replace(/^http_listener 9090$/m, `http_listener ${http} 127.0.0.1`);
  mkdirSync(join(dir, 'config'));
  writeFileSync(join(dir, 'mqprobe.conf'), conf);
  copyFileSync(docker('entrypoint.sh'), join(dir, 'entrypoint.sh'));
  const secret = 'entrypoint-s3cret!';
  const child = spawn('sh', [join(dir, 'entrypoint.sh')], {
    env: {
      ...process.env,
      MQPROBE_CONFIG: join(dir, 'mqprobe.conf'),
      MQPROBE_CLI: `${process.execPath} --import tsx ${join(repoRoot, 'app', 'cli.ts')}`,
      MQPROBE_USERNAME: 'device',
      MQPROBE_PASSWORD: secret,
    },
    cwd: repoRoot,
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(() => child.kill('SIGKILL'));
  await waitForPort(mqtt, 30_000);
  t.match(readFileSync(join(dir, 'config', 'passwd'), 'utf8'), /^device:\$7\$/, 'the entrypoint created the password file');
  const c = await connectClient(t, `mqtt://127.0.0.1:${mqtt}`, { username: 'device', password: secret });
  t.ok(c.connected, 'the configured user connects');
  await t.rejects(connectClient(t, `mqtt://127.0.0.1:${mqtt}`), /Not authorized/i, 'anonymous clients are refused by default');
  const health = await fetch(`http://127.0.0.1:${http}/healthz`);
  t.equal(health.status, 200, '/healthz answers 200 (the image HEALTHCHECK)');
  c.end(true);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM through the entrypoint: clean exit 0');
  t.notOk(out.includes(secret), 'the password appears nowhere in the output');
});
