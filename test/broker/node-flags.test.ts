import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';
import { repoRoot } from '../helpers/paths.js';

const flags = BROKER_NODE_FLAGS.join(' ');
const read = (...p: string[]) => readFileSync(join(repoRoot, ...p), 'utf8');

t.test('every way of starting the broker passes the same Node.js flags', async (t) => {
  const shebang = read('app', 'cli.ts').split('\n')[0];
  t.equal(shebang, `#!/usr/bin/env -S node ${flags}`, 'the mqprobe command (npm bin, /usr/bin/mqprobe of the systemd unit)');
  const start = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts.start;
  t.match(start, new RegExp(`^node ${flags} dist/app/cli\\.js `), 'npm start');
  t.match(read('docker', 'entrypoint.sh'), `MQPROBE_CLI:-node ${flags} /app/dist/app/cli.js}`, 'the container entrypoint');
});

t.test('the shebang line runs on this system: env -S splits it and this Node accepts the flags', async (t) => {
  const line = read('app', 'cli.ts').split('\n')[0];
  const script = join(mkdtempSync(join(tmpdir(), 'mqprobe-shebang-')), 'show.mjs');
  writeFileSync(script, `${line}\nprocess.stdout.write(JSON.stringify(process.execArgv));\n`, { mode: 0o755 });
  // executed as the kernel executes the installed `mqprobe` (the shebang's interpreter and its one argument)
  const r = spawnSync(script, { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.same(JSON.parse(r.stdout), [...BROKER_NODE_FLAGS], 'node got the flags');
});

t.test('a flag this Node does not know would stop the start: the check above can fail', async (t) => {
  const r = spawnSync('/usr/bin/env', ['-S', 'node --max-semi-space-sise=32', '-e', '0'], { encoding: 'utf8' });
  t.not(r.status, 0);
  t.match(r.stderr, /bad option/);
});
