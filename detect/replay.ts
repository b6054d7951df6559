/**
 * `mqprobe detect --replay FILE`: the detectors over recorded capture events (json_lines as the
 * file sink writes them), alerts to stdout one JSON object per line. Event time only, so a
 * replay raises the alerts the live broker raised from the same events.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { Command } from 'commander';
import { ConfigError } from '../broker/config/errors.js';
import type { DetectConfig } from './config.js';
import type { AlertEvent } from './alert.js';
import { DetectionEngine } from './engine.js';
import { IndicatorList } from './indicators.js';
import { isCaptureFile, replayMosquittoLogs } from './replay-log.js';
import { parseBoundedJson } from '../broker/bounded-json.js';

export interface ReplayStats {
  lines: number;
  /** Lines that are not JSON objects: skipped and counted. */
  malformed: number;
  /** The first malformed line numbers, for the warning. */
  malformedAt: number[];
  alerts: number;
}

export interface ReplayOptions {
  config: DetectConfig;
  indicators?: IndicatorList;
}

/** Runs the detectors over json_lines from `input` and writes the alerts to `output` as they are raised. */
export async function replayCapture(input: Readable, output: Writable, opts: ReplayOptions): Promise<ReplayStats> {
  const engine = new DetectionEngine({ config: opts.config, indicators: () => opts.indicators });
  const stats: ReplayStats = { lines: 0, malformed: 0, malformedAt: [], alerts: 0 };
  const write = async (alerts: readonly AlertEvent[]) => {
    for (const a of alerts) {
      stats.alerts++;
      if (!output.write(`${JSON.stringify(a)}\n`)) await new Promise((r) => output.once('drain', r));
    }
  };
  const bad = () => {
    stats.malformed++;
    if (stats.malformedAt.length < 5) stats.malformedAt.push(stats.lines);
  };
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    stats.lines++;
    if (line.trim() === '') continue;
    let event: unknown;
    try {
      event = parseBoundedJson(line);
    } catch {
      bad();
      continue;
    }
    // alerts recorded by the live broker are the output, not the input
    if ((event as { event?: { kind?: unknown } } | null)?.event?.kind === 'alert') continue;
    const before = engine.stats.invalid;
    const alerts = engine.process(event);
    if (engine.stats.invalid > before) bad();
    await write(alerts);
  }
  await write(engine.flush());
  return stats;
}

/** The `detect` subcommand; `loadDetect` reads the detect_* keys of a config file (the broker's loader). */
export function detectCommand(loadDetect: (file: string | undefined) => DetectConfig): Command {
  return new Command('detect')
    .description(
      "run the detectors over recorded capture events (json_lines) or over Mosquitto's own logs, and print the alerts, one JSON object per line",
    )
    .requiredOption(
      '--replay <files...>',
      'capture file written by `capture_sink file` (`-` for stdin), or Mosquitto log files (gzip too), merged in time order',
    )
    .option('-c, --config <file>', 'configuration file whose detect_rule lines apply')
    .option('--indicators <file>', 'threat-intel indicators, one `ip|domain|url|hash <value> [name]` a line')
    .option('--log-timestamp-format <format>', "Mosquitto's log_timestamp_format, when its log was written with one (local time)")
    .action(async (opts: { replay: string[]; config?: string; indicators?: string; logTimestampFormat?: string }) => {
      try {
        const config = loadDetect(opts.config);
        const indicators = opts.indicators ? IndicatorList.fromFile(opts.indicators) : undefined;
        const [first] = opts.replay;
        if (opts.replay.length === 1 && (first === '-' || (await isCaptureFile(first))))
          return await replayCaptureFile(first, config, indicators);
        const stats = await replayMosquittoLogs(opts.replay, process.stdout, {
          config,
          indicators,
          timestampFormat: opts.logTimestampFormat,
        });
        process.stderr.write(
          `mqprobe detect: ${stats.lines} log lines, ${stats.events} events, ${stats.alerts} alerts\n${stats.notes.map((n) => `mqprobe detect: ${n}\n`).join('')}`,
        );
      } catch (err) {
        process.stderr.write(`mqprobe detect: ${(err as Error).message}\n`);
        process.exitCode = err instanceof ConfigError ? 3 : 1;
      }
    });
}

async function replayCaptureFile(file: string, config: DetectConfig, indicators: IndicatorList | undefined): Promise<void> {
  const input = file === '-' ? process.stdin : createReadStream(file);
  if (input !== process.stdin) await new Promise<void>((resolve, reject) => input.once('open', () => resolve()).once('error', reject));
  const stats = await replayCapture(input, process.stdout, { config, indicators });
  if (stats.malformed > 0)
    process.stderr.write(
      `mqprobe detect: skipped ${stats.malformed} of ${stats.lines} lines that are not capture events (lines ${stats.malformedAt.join(', ')}${stats.malformed > stats.malformedAt.length ? ', …' : ''})\n`,
    );
}
