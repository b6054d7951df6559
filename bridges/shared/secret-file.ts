import { readTextLines } from '../../broker/auth/text-file.js';

/**
 * Reads a one-line secret (a password, an access token) from the file a `<beat>_*_file` key names,
 * at each start so that a rotated secret is picked up. Errors name the key and the file, never the
 * content.
 */
export async function readSecretFile(path: string, key: string): Promise<string> {
  const lines = await readTextLines(path, { what: key, maxBytes: 64 * 1024, maxLineBytes: 16 * 1024 });
  const filled = lines.filter((l) => l.text.trim() !== '');
  if (filled.length === 0) throw new Error(`${key} ${path} is empty`);
  if (filled.length > 1) throw new Error(`${key} ${path} must hold one line, it has ${filled.length}`);
  return filled[0].text.trim();
}
