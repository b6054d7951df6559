import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { loadConfig } from '../../app/config.js';
import { ConfigError } from '../../broker/config/errors.js';
import { tempDir } from './tmp.js';

/** Writes config text to a file (in a new temp folder unless given) and returns its path. */
export function conf(text: string, name = 'mqprobe.conf', dir = tempDir()): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** Config text that must be refused: a ConfigError matching `pattern` and naming the file. Returns the message. */
export function configError(t: Test, text: string, pattern: RegExp, msg: string): string {
  const file = conf(text);
  let caught: unknown;
  try {
    loadConfig(file);
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof ConfigError, `${msg}: a ConfigError`);
  const message = (caught as Error | undefined)?.message ?? '';
  t.match(message, pattern, msg);
  t.ok(message.startsWith(`${file}:`), `${msg}: names the file`);
  return message;
}
