import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const PAHO_VERSION = '2.1.0';

/**
 * Eclipse paho-mqtt from PyPI in a Python venv, made on first use (python3 -m venv, pip install
 * paho-mqtt==2.1.0: about 40 s, network to PyPI only) and kept in the temp folder for later runs;
 * .ci/run makes it before the tests. Resolves with the venv's python.
 */
export async function pahoPython(): Promise<string> {
  const venv = join(tmpdir(), `mqprobe-paho-${PAHO_VERSION}`);
  const python = join(venv, 'bin', 'python');
  const ready = join(venv, '.installed');
  if (!existsSync(ready)) {
    await run('python3', ['-m', 'venv', venv]);
    await run(join(venv, 'bin', 'pip'), ['install', '--quiet', `paho-mqtt==${PAHO_VERSION}`], { timeout: 180_000 });
    await run('touch', [ready]);
  }
  return python;
}
