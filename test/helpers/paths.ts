import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

/** The repository root (tests run from source through tsx). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** A file under test/fixtures (see test/fixtures/PROVENANCE.md), read in place. */
export function fixture(...parts: string[]): string {
  return join(repoRoot, 'test', 'fixtures', ...parts);
}
