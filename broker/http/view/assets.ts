import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The bundled page (broker/http/view/bundle.ts writes it at build time): file name → content. */
export interface Assets {
  files: Map<string, { type: string; body: Buffer }>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export const ASSET_NAMES = ['index.html', 'app.js', 'app.css', 'icon.svg'];

/** The package root: the folder above this file that holds package.json (from sources and from dist/ alike). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('web view: package.json not found above broker/http/view');
    dir = up;
  }
  return dir;
}

/** Where the build writes the bundled page: `dist/web` in the package. */
export const assetsDir = (): string => join(packageRoot(), 'dist', 'web');

/**
 * Reads the bundled page once, at start. Missing assets are not an error here: the page answers
 * 503 naming the build step, and the JSON API works without them.
 */
export function loadAssets(dir = assetsDir()): Assets | { missing: string } {
  const files = new Map<string, { type: string; body: Buffer }>();
  for (const name of ASSET_NAMES) {
    const file = join(dir, name);
    if (!existsSync(file)) return { missing: file };
    files.set(name, { type: TYPES[name.slice(name.lastIndexOf('.'))], body: readFileSync(file) });
  }
  return { files };
}
