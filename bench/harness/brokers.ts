/** The brokers under comparison: how each one is configured and started on a free port. */
import { spawnSync } from 'node:child_process';
import { accessSync, chmodSync, constants, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { BROKER_NODE_FLAGS } from '../../broker/node-flags.js';
import { freePort, nodeCommand, repoRoot } from './processes.js';
import { isMqtt5Case } from './scenarios.js';

export interface BrokerContext {
  /** Folder for config and password files (0755: Mosquitto started as root reads them as user mosquitto). */
  dir: string;
  name: string;
  port: number;
  /** A Mosquitto-format password file; when set, anonymous clients are refused. */
  passwordFile?: string;
  /** Port of the json_lines receiver (variants with `receiver`). */
  receiverPort?: number;
}

export interface BrokerVariant {
  id: string;
  /** Short name for tables and charts. */
  label: string;
  description: string;
  /** Needs a json_lines receiver running first. */
  receiver: boolean;
  /** Can check clients against a Mosquitto password file. */
  auth: boolean;
  /** SIGTERM and wait (capture delivers what it holds) instead of SIGKILL. */
  graceful: boolean;
  /** Only these scenario cases (ids such as `D-2000`, or letters); every case when absent. */
  only?: (caseId: string, scenario: string) => boolean;
  /** Writes the variant's config into ctx.dir and returns the command line. */
  command(ctx: BrokerContext): string[];
}

function writeConf(ctx: BrokerContext, lines: string[]): string {
  const file = join(ctx.dir, `${ctx.name}.conf`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  chmodSync(file, 0o644);
  return file;
}

/** Mosquitto's own keys, understood the same way by mqprobe. */
function commonLines(ctx: BrokerContext): string[] {
  return [
    `listener ${ctx.port} 127.0.0.1`,
    ...(ctx.passwordFile ? ['allow_anonymous false', `password_file ${ctx.passwordFile}`] : ['allow_anonymous true']),
  ];
}

function mqprobe(id: string, label: string, description: string, extra: (ctx: BrokerContext) => string[], receiver = false): BrokerVariant {
  return {
    id,
    label,
    description,
    receiver,
    auth: true,
    graceful: receiver,
    command: (ctx) => nodeCommand('app/cli', ['-c', writeConf(ctx, [...commonLines(ctx), ...extra(ctx)])], BROKER_NODE_FLAGS),
  };
}

/** Where Debian (and most others) put the mosquitto binary; /usr/sbin is often not on a user's PATH. */
export function findMosquitto(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/opt/homebrew/sbin'];
  for (const d of dirs.filter(Boolean)) {
    const candidate = join(d, 'mosquitto');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * For the scripts beside the harness (bench/flood, bench/memory, bench/latency): Mosquitto's command
 * line on a free loopback port, anonymous, with `extra` config lines; undefined when it is not
 * installed. `dir` must be 0755 (Mosquitto, started as root, reads its config as user mosquitto).
 */
export async function mosquittoOnFreePort(dir: string, extra = ''): Promise<{ port: number; argv: string[] } | undefined> {
  const bin = findMosquitto();
  if (!bin) return undefined;
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\n${extra}`);
  chmodSync(conf, 0o644);
  return { port, argv: [bin, '-c', conf] };
}

export function mosquittoVersion(bin: string): string | undefined {
  const r = spawnSync(bin, ['-h'], { encoding: 'utf8' });
  return /mosquitto version (\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1];
}

export function aedesVersion(): string {
  return (JSON.parse(readFileSync(join(repoRoot, 'node_modules', 'aedes', 'package.json'), 'utf8')) as { version: string }).version;
}

export const MOSQUITTO_MISSING =
  'Mosquitto is not installed, so there is nothing to compare with. On Debian or Ubuntu: `sudo apt-get install -y mosquitto` ' +
  '(the bench starts its own copy on a free port; the system service the package starts is not used). ' +
  'Running the other brokers only; ratios to Mosquitto are left out.';

export function brokerVariants(mosquittoBin: string | undefined, versions: { mosquitto?: string; aedes: string }): BrokerVariant[] {
  const list: BrokerVariant[] = [];
  if (mosquittoBin)
    list.push({
      id: 'mosquitto',
      label: `Mosquitto ${versions.mosquitto ?? ''}`.trim(),
      description: `Debian's mosquitto package (${mosquittoBin}), default settings`,
      receiver: false,
      auth: true,
      graceful: false,
      command: (ctx) => [mosquittoBin, '-c', writeConf(ctx, commonLines(ctx))],
    });
  list.push(
    mqprobe('mqprobe', 'mqprobe', 'mqprobe with capture and detection off (`detect off`, no capture_sink)', () => ['detect off']),
    mqprobe(
      'mqprobe-capture',
      'mqprobe + capture',
      'mqprobe capturing every event (`capture_events default`) to a local json_lines receiver over TCP (`capture_sink logstash tcp://…`), detection off',
      (ctx) => ['detect off', `capture_sink logstash tcp://127.0.0.1:${ctx.receiverPort}`],
      true,
    ),
    mqprobe(
      'mqprobe-detect',
      'mqprobe defaults',
      'mqprobe out of the box: no capture_sink, detection on (its rules read the capture stream)',
      () => [],
    ),
    {
      id: 'aedes',
      label: `Aedes ${versions.aedes}`,
      description: `bare Aedes ${versions.aedes} from node_modules on a net.Server: the floor mqprobe builds on`,
      receiver: false,
      auth: false,
      graceful: false,
      // Aedes 1.2 refuses protocol level 5
      only: (caseId) => !isMqtt5Case(caseId),
      command: (ctx) => nodeCommand('bench/harness/servers/aedes', [String(ctx.port)]),
    },
    {
      id: 'node-floor',
      label: 'Node floor',
      description:
        'a bare Node TCP server holding the same sockets and answering CONNECT with a fixed CONNACK: what any Node broker pays per connection (scenarios D and E-anonymous only)',
      receiver: false,
      auth: false,
      graceful: false,
      only: (caseId, scenario) => scenario === 'D' || caseId === 'E-anonymous',
      command: (ctx) => nodeCommand('bench/harness/servers/node-floor', [String(ctx.port)], BROKER_NODE_FLAGS),
    },
  );
  return list;
}
