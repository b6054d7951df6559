/**
 * The vendored engine cannot drift from its record: aedes@2.0.0-beta.1 is packed from the npm
 * registry (`npm pack`, real network to the registry), its tarball integrity compared with the one
 * broker/engine/vendor/UPSTREAM.md records, its runtime files patched with every
 * broker/engine/vendor/patches/NN-*.patch in order (`git apply`), and the result compared file by
 * file with broker/engine/vendor/aedes/.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import { repoRoot } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';

const vendor = join(repoRoot, 'broker/engine/vendor');
const upstream = readFileSync(join(vendor, 'UPSTREAM.md'), 'utf8');
/** What of the tarball is vendored (UPSTREAM.md says why the rest is not). */
const RUNTIME = ['aedes.js', 'aedes.d.ts', 'lib', 'types', 'package.json', 'LICENSE', 'README.md'];

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

t.test('broker/engine/vendor/aedes = npm aedes@2.0.0-beta.1 + the patches UPSTREAM.md lists', async (tt) => {
  const version = /^Version: `aedes@([^`]+)`/m.exec(upstream)?.[1];
  const integrity = /^Tarball integrity: `([^`]+)`/m.exec(upstream)?.[1];
  tt.ok(version && integrity, 'UPSTREAM.md names the version and the tarball integrity');
  const dir = tempDir('mqprobe-vendor-');
  const [packed] = JSON.parse(
    execFileSync('npm', ['pack', `aedes@${version}`, '--json', '--pack-destination', dir], { cwd: dir, encoding: 'utf8' }),
  ) as { filename: string; integrity: string }[];
  tt.equal(packed.integrity, integrity, 'the registry tarball is the one recorded');

  execFileSync('tar', ['xzf', join(dir, packed.filename), '-C', dir]);
  const tree = join(dir, 'tree');
  mkdirSync(tree);
  for (const entry of RUNTIME) cpSync(join(dir, 'package', entry), join(tree, entry), { recursive: true });
  // a repository of its own, so git apply works relative to this tree whatever surrounds the temp folder
  execFileSync('git', ['init', '-q'], { cwd: tree });

  const patches = readdirSync(join(vendor, 'patches')).sort();
  tt.ok(patches.length > 0, 'there are patches');
  for (const patch of patches) {
    tt.match(patch, /^\d\d-[a-z0-9-]+\.patch$/, `${patch}: named NN-name.patch`);
    tt.ok(upstream.includes(`patches/${patch}`), `${patch} is listed in UPSTREAM.md`);
    execFileSync('git', ['apply', '--whitespace=nowarn', join(vendor, 'patches', patch)], { cwd: tree });
  }

  const vendored = join(vendor, 'aedes');
  const expected = filesUnder(tree).filter((f) => !f.startsWith('.git/'));
  tt.same(filesUnder(vendored), expected, 'the same files');
  for (const f of expected) {
    tt.ok(readFileSync(join(vendored, f)).equals(readFileSync(join(tree, f))), `${f}: same content`);
  }
});
