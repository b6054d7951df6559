import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { repoRoot } from '../helpers/paths.js';

/** The import graph of the shipped code (docs/architecture.md states the rules checked here). */
const AREAS = ['app', 'broker', 'capture', 'detect', 'bridges', 'elastic'];
const SPECIFIER = /^\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;

function sources(dir: string): string[] {
  return readdirSync(join(repoRoot, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = join(dir, e.name);
    if (e.isDirectory()) return sources(rel);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [rel] : [];
  });
}

function importsOf(file: string): { local: string[]; packages: string[] } {
  const text = readFileSync(join(repoRoot, file), 'utf8');
  const local: string[] = [];
  const packages: string[] = [];
  for (const m of text.matchAll(SPECIFIER)) {
    const spec = m[1] ?? m[2];
    if (spec.startsWith('.')) local.push(normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts'));
    else packages.push(spec);
  }
  return { local, packages };
}

const files = AREAS.flatMap(sources);
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const area = (f: string) => f.split('/')[0];
const isEngineModule = (p: string) => /^(aedes|aedes-[\w-]+|mqemitter|mqemitter-[\w-]+)(\/|$)/.test(p);

t.test('the graph was read: every area has files and imports', async (t) => {
  for (const a of AREAS) t.ok(files.some((f) => area(f) === a), `${a}/ has sources`);
  t.ok([...graph.values()].some((g) => g.packages.includes('aedes')), 'the aedes import is seen where it is');
});

t.test('broker/ imports nothing from the areas built on it', async (t) => {
  const upward = files
    .filter((f) => area(f) === 'broker')
    .flatMap((f) => graph.get(f)!.local.filter((d) => area(d) !== 'broker').map((d) => `${f} -> ${d}`));
  t.same(upward, []);
});

t.test('nothing outside broker/ imports aedes, aedes-* or mqemitter*', async (t) => {
  const outside = files.filter((f) => area(f) !== 'broker').flatMap((f) => graph.get(f)!.packages.filter(isEngineModule).map((p) => `${f} -> ${p}`));
  t.same(outside, []);
});

t.test('inside broker/, only broker/engine/ and the files still to move import the engine (the list may only shrink)', async (t) => {
  const knowing = files.filter((f) => area(f) === 'broker' && !f.startsWith('broker/engine/') && graph.get(f)!.packages.some(isEngineModule));
  t.same(knowing.sort(), ['broker/access.ts', 'broker/persistence/index.ts', 'broker/persistence/snapshot.ts']);
});

t.test('no import cycle (type imports included)', async (t) => {
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    state.set(f, 'open');
    for (const d of graph.get(f)?.local ?? []) {
      if (!graph.has(d)) continue;
      if (state.get(d) === 'open') cycles.push([...path.slice(path.indexOf(d)), d].map((p) => relative('.', p)).join(' -> '));
      else if (!state.has(d)) visit(d, [...path, d]);
    }
    state.set(f, 'done');
  };
  for (const f of files) if (!state.has(f)) visit(f, [f]);
  t.same(cycles, []);
});
