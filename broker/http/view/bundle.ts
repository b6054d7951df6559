/**
 * Builds the web view's page into dist/web (run by `npm run build`; the browser test runs it too):
 * the Preact + uPlot app in one minified script and one stylesheet, no source maps, nothing loaded
 * from elsewhere at run time. esbuild is a build-time dependency only.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assetsDir } from './assets.js';

/** The page's sources: next to this file's TypeScript source (from dist/ as from the sources). */
function uiDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return join(here.replace(/([/\\])dist([/\\])broker/, '$1broker'), 'ui');
}

export async function buildView(outDir = assetsDir()): Promise<void> {
  const { build } = await import('esbuild');
  const ui = uiDir();
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: { app: join(ui, 'app.tsx') },
    outdir: outDir,
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['chrome100', 'firefox100', 'safari15'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: join(ui, 'tsconfig.json'),
    legalComments: 'eof',
    logLevel: 'warning',
  });
  for (const name of ['index.html', 'icon.svg']) copyFileSync(join(ui, name), join(outDir, name));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await buildView();
