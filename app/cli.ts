#!/usr/bin/env -S node --max-semi-space-size=32
// first: V8's tiering is set before any broker code runs (broker/jit-tiering.ts)
import '../broker/jit-tiering.js';
import { spawn } from 'node:child_process';
import { writeFileSync, rmSync } from 'node:fs';
import { Command, Option } from 'commander';
import { loadConfig, renderConfigDocs } from './config.js';
import { ConfigError } from '../broker/config/errors.js';
import { createLogger, logDestinations } from '../broker/logger.js';
import { startingLine, configLine, runningLine, terminatingLine } from '../broker/log/broker-lines.js';
import { startBroker } from './assemble.js';
import { captureStateDirs } from '../capture/config.js';
import { createStateDirs, dropPrivileges } from '../broker/privileges.js';
import { VERSION } from '../broker/version.js';
import { runPasswdCommand, passwdUsage } from '../broker/auth/passwd-command.js';
import { beatDocSections } from '../bridges/index.js';
import { elasticSetupCommand } from '../elastic/setup-command.js';
import { detectCommand } from '../detect/replay.js';
import { bansCommand } from '../detect/response/cli.js';

interface MainOptions {
  config?: string;
  port?: number[];
  verbose?: boolean;
  daemon?: boolean;
  testConfig?: boolean;
}

/** Prints one clear line (a stack only with -v) and exits non-zero. */
function die(err: unknown, verbose: boolean): never {
  const e = err as Error;
  process.stderr.write(`mqprobe: ${verbose && !(e instanceof ConfigError) ? e.stack : e.message}\n`);
  process.exit(err instanceof ConfigError ? 3 : 1);
}

async function runBroker(opts: MainOptions): Promise<void> {
  const verbose = !!opts.verbose;
  if (opts.daemon && !process.env.MQPROBE_DAEMON_CHILD) {
    // Mosquitto's -d: detach and keep running in the background
    const args = process.argv.slice(1).filter((a) => a !== '-d' && a !== '--daemon');
    const child = spawn(process.execPath, [...process.execArgv, ...args], {
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, MQPROBE_DAEMON_CHILD: '1' },
    });
    child.unref();
    process.exit(0);
  }
  if (opts.testConfig && !opts.config) {
    // Mosquitto 2.1's --test-config, same words and exit code (MOSQ_ERR_INVAL)
    process.stderr.write('Please provide a configuration file to test.\n');
    process.exit(3);
  }
  let config;
  try {
    config = loadConfig(opts.config, { ports: opts.port });
  } catch (err) {
    die(err, verbose);
  }
  let log;
  try {
    log = createLogger(config, verbose);
  } catch (err) {
    die(new Error(`log_dest: ${(err as Error).message}`), verbose); // e.g. a log file that cannot be opened
  }
  if (opts.testConfig) {
    for (const w of config.warnings) log.warn(`${w.file}:${w.line}: ${w.key}: ${w.message}`);
    log.info('Configuration file is OK.');
    log.flush();
    process.exit(0);
  }
  for (const w of config.warnings) log.warn(`${w.file}:${w.line}: ${w.key}: ${w.message}`);
  log.info(startingLine(VERSION));
  log.info(configLine(config.file));
  if (config.localOnly) {
    // Mosquitto 2.0's words, so that people who know them recognise the mode
    log.info('Starting in local only mode. Connections will only be possible from clients running on this machine.');
    log.info('Create a configuration file which defines a listener to allow remote access.');
  }
  if (config.pidFile) writeFileSync(config.pidFile, `${process.pid}\n`);
  let broker;
  try {
    const captureDirs = captureStateDirs(config.capture);
    const created = createStateDirs(config, captureDirs);
    broker = await startBroker(config, { log });
    // Mosquitto's `user`: ports bound and files open, stop being root (broker/privileges.ts)
    dropPrivileges(config, created, log, captureDirs);
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'cannot start');
    log.flush?.();
    die(err, verbose);
  }
  let stopping = false;
  // log_dest topic: from now on the broker publishes its log lines on $SYS/broker/log/<type>
  logDestinations(log)?.setPublisher((topic, payload) => {
    if (!stopping) broker.broker.publish({ topic, payload: Buffer.from(payload), qos: 2, retain: false }, () => undefined);
  });
  log.info(runningLine(VERSION));
  const stop = async (signal: string) => {
    // a second SIGTERM/SIGINT during shutdown must not end it half-way (default action: exit 143/130)
    if (stopping) return void log.info(`${signal} received, already shutting down`);
    stopping = true;
    log.info(`${signal} received, shutting down`);
    log.info(terminatingLine(VERSION));
    const force = setTimeout(() => process.exit(1), 15_000).unref();
    await broker.close();
    if (config.pidFile) rmSync(config.pidFile, { force: true });
    clearTimeout(force);
    log.flush?.();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => void broker.reload());
}

export function buildProgram(): Command {
  const program = new Command('mqprobe')
    .description('An instrumented MQTT broker, drop-in for Mosquitto, that captures every broker event.')
    .version(VERSION, '--version')
    .enablePositionalOptions() // `mqprobe passwd -c …` must reach passwd, not become --config
    .option('-c, --config <file>', 'Mosquitto-style configuration file')
    .addOption(
      new Option('-p, --port <port>', 'listen on this port instead of the configured ones (repeatable)').argParser(
        (v: string, prev: number[] = []) => {
          const n = Number(v);
          if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`invalid port "${v}"`);
          return [...prev, n];
        },
      ),
    )
    .option('-v, --verbose', 'debug logging, stack traces on errors')
    .option('-d, --daemon', 'run in the background')
    .option('--test-config', 'check the configuration file and exit: 0 when it is valid, 3 (and the error) when not, as Mosquitto 2.1')
    .action((opts: MainOptions) => runBroker(opts));
  program
    .command('passwd')
    .description('manage a Mosquitto password file (same format and flags as mosquitto_passwd)')
    .helpOption(false)
    .allowUnknownOption()
    .passThroughOptions()
    .argument('[args...]')
    .usage(passwdUsage)
    .action(async (args: string[]) => {
      process.exitCode = await runPasswdCommand(args, {
        stdout: process.stdout,
        stderr: process.stderr,
        stdin: process.stdin,
        isTTY: !!process.stdin.isTTY,
      });
    });
  program.command('setup').description('install mqprobe assets into other systems').addCommand(elasticSetupCommand());
  program.addCommand(detectCommand((file) => loadConfig(file).detect));
  program.addCommand(bansCommand());
  program
    .command('config-docs')
    .description('print the configuration reference (docs/configuration.md) generated from the key specifications')
    .action(() => {
      process.stdout.write(renderConfigDocs(beatDocSections()));
    });
  return program;
}

await buildProgram().parseAsync(process.argv);
