import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';

const V8_MAJOR = Number(process.versions.v8.split('.')[0]);
const tieringModule = pathToFileURL(join(repoRoot, 'broker', 'jit-tiering.ts')).href;

// Calls a small function until V8 optimizes it or has it queued for optimization (V8's OptimizationStatus
// bits kOptimized, kMarkedForOptimization, kMarkedForConcurrentOptimization, kOptimizingConcurrently).
const PROBE = `
const tiering = process.argv[2];
if (tiering) await import(tiering);
function hot(a, b) { return ((a * 31 + b) ^ (a >>> 3)) + (b & 0xff) * 7 - (a % 13); }
const ON_ITS_WAY = 16 | 256 | 512 | 1024;
let calls = 0;
while (calls < 1e6 && !(%GetOptimizationStatus(hot) & ON_ITS_WAY)) { hot(calls, 7); calls++; }
process.stdout.write(String(calls));
`;

const probeDir = tempDir('mqprobe-jit-');
t.teardown(() => rmSync(probeDir, { recursive: true, force: true }));
const probe = join(probeDir, 'probe.mjs');
writeFileSync(probe, PROBE);

function callsUntilOptimized(withTiering: boolean): number {
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', probe, ...(withTiering ? [tieringModule] : [])], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`probe failed: ${r.stderr}`);
  return Number(r.stdout);
}

t.test('the mqprobe command imports the tiering module before anything else', async (t) => {
  const firstImport = readFileSync(join(repoRoot, 'app', 'cli.ts'), 'utf8')
    .split('\n')
    .find((line) => line.startsWith('import '));
  t.equal(firstImport, "import '../broker/jit-tiering.js';");
});

t.test(`V8 ${process.versions.v8}: what the module does to when a hot function is optimized`, async (t) => {
  const without = callsUntilOptimized(false);
  const withModule = callsUntilOptimized(true);
  t.ok(without > 0 && without < 1e6, `without the module V8 optimizes the probe after ${without} calls`);
  if (V8_MAJOR < 12) {
    t.ok(withModule * 4 < without, `V8 11: a quarter of the interrupt budget or less, ${withModule} calls against ${without}`);
  } else {
    t.equal(withModule, without, `V8 ${V8_MAJOR}: the module sets no flag, the same ${without} calls`);
  }
});
