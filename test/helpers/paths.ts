import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

/** The repository root (tests run from source through tsx). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** ../shared beside the clone, as CI lays it out. */
export const sharedDir = resolve(repoRoot, '..', 'shared');
/** A file under ../shared/fixtures, read in place. */
export function fixture(...parts: string[]): string {
  return join(sharedDir, 'fixtures', ...parts);
}
