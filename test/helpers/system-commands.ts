/** The system commands the tests run, and the check test/preflight.ts makes before `npm test`. */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Every system command a test runs, and the Debian package that carries it (.ci/run installs them). */
export const COMMANDS: Record<string, string> = {
  mosquitto: 'mosquitto',
  mosquitto_passwd: 'mosquitto',
  mosquitto_ctrl: 'mosquitto',
  mosquitto_pub: 'mosquitto-clients',
  mosquitto_sub: 'mosquitto-clients',
  'redis-server': 'redis-server',
  'syslog-ng': 'syslog-ng-core',
  openssl: 'openssl',
  argon2: 'argon2',
  haproxy: 'haproxy',
  go: 'golang-go',
  logger: 'bsdutils',
  java: 'openjdk-17-jdk-headless',
  mvn: 'maven',
  'docker-compose': 'docker-compose',
  'systemd-analyze': 'systemd',
  script: 'bsdutils',
  flock: 'util-linux',
  runuser: 'util-linux',
  taskset: 'util-linux',
  // the web view's browser test (puppeteer-core drives it; nothing is downloaded)
  chromium: 'chromium',
  // python3 -m venv for paho-mqtt (test/helpers/paho.ts)
  python3: 'python3-venv',
};

function onPath(command: string, dirs: string[]): boolean {
  return dirs.some((dir) => {
    const file = join(dir, command);
    try {
      accessSync(file, constants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  });
}

/** Debian keeps daemons in sbin, which a normal user's PATH leaves out. */
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/**
 * What stops the tests, as one line (empty when nothing does): the packages whose commands are
 * nowhere, and the commands that are installed in an sbin folder that PATH leaves out.
 */
export function preflightProblem(path: string, sbin = SBIN): string {
  const dirs = path.split(delimiter).filter(Boolean);
  const absent = Object.keys(COMMANDS).filter((c) => !onPath(c, dirs));
  const inSbin = absent.filter((c) => onPath(c, sbin));
  const packages = [...new Set(absent.filter((c) => !inSbin.includes(c)).map((c) => COMMANDS[c]))];
  const problems: string[] = [];
  if (packages.length > 0) problems.push(`missing system packages: ${packages.join(' ')} — run: sudo bash .ci/run`);
  if (inSbin.length > 0)
    problems.push(`not on PATH: ${inSbin.join(' ')} (installed in sbin) — run: PATH="$PATH:${sbin.join(':')}" npm test`);
  return problems.join('; ');
}
