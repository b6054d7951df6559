/** Command-line options of `npm run bench`. */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from './processes.js';
import { MQTT5_CASE_IDS, PROFILES, SCENARIO_IDS, type Profile } from './scenarios.js';

export interface BenchOptions {
  profile: Profile;
  /** Scenario letters (A–G) or case ids (e.g. D-2000) to run. */
  scenarios: string[];
  /** Broker variant ids, in the order they alternate. */
  brokers?: string[];
  /** Where RESULTS.md, charts/ and raw/ go. */
  out: string;
  pin: boolean;
  /** Keep the temporary folder with configs and broker logs. */
  keep: boolean;
  /** A sentence for RESULTS.md about the conditions of the run. */
  note?: string;
  /** Folder for a V8 CPU profile of every Node broker run (`--cpu-prof`), one subfolder per run. */
  cpuProf?: string;
  help: boolean;
}

export const USAGE = `Usage: npm run bench -- [options]

Compares mqprobe with Mosquitto, bare Aedes and itself with capture on: scenarios A–G, each broker
started fresh for every run, alternating, several rounds; prints a table and writes RESULTS.md,
one SVG chart per scenario and the raw runs as JSON lines.

  --quick               smoke check in under 2 minutes (1 round, short runs, fewer clients);
                        writes to bench/out/quick-<time>/ unless --out is given
  --rounds N            rounds per broker and scenario (full: ${PROFILES.full.rounds})
  --duration S          measuring window of the message scenarios in seconds (full: ${PROFILES.full.durationMs / 1000})
  --warmup S            warm-up before the window in seconds (full: ${PROFILES.full.warmupMs / 1000})
  --storm-warmup N      E only: N clients connect and are closed before the measured storm, so that a
                        Node broker's code is compiled as in one that has been running (default 0: fresh)
  --scenarios LIST      comma list of scenarios (${SCENARIO_IDS.join(',')}) or cases (A5, C5: over MQTT 5; D-2000, E-password)
  --brokers LIST        comma list of: mosquitto, mqprobe, mqprobe-capture, mqprobe-detect, aedes,
                        node-floor (D and E-anonymous only)
  --out DIR             output folder (default: bench/, i.e. bench/RESULTS.md, bench/charts, bench/raw)
  --note TEXT           a sentence for RESULTS.md about the conditions (e.g. other load on the machine)
  --no-pin              do not pin the broker and the load generator to different CPUs
  --keep                keep the temporary folder with configs and broker logs
  --cpu-prof DIR        write a V8 CPU profile of every Node broker run to DIR/<case>-<broker>-r<round>/
                        (profiling slows the broker: use the profiles for proportions, not the figures)
  -h, --help            this text
`;

function positive(name: string, v: string | undefined, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} expects a number ≥ ${min}, got "${v}"`);
  return n;
}

export function parseOptions(argv: string[], now = new Date()): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      scenarios: { type: 'string' },
      brokers: { type: 'string' },
      out: { type: 'string' },
      note: { type: 'string' },
      'no-pin': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      'storm-warmup': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const base = values.quick ? PROFILES.quick : PROFILES.full;
  const custom =
    values.rounds !== undefined || values.duration !== undefined || values.warmup !== undefined || values['storm-warmup'] !== undefined;
  const profile: Profile = {
    ...base,
    name: custom ? `${base.name}, adjusted` : base.name,
    rounds: Math.round(positive('rounds', values.rounds, base.rounds)),
    durationMs: Math.round(positive('duration', values.duration, base.durationMs / 1000, 0.2) * 1000),
    warmupMs: Math.round(positive('warmup', values.warmup, base.warmupMs / 1000, 0) * 1000),
    stormWarmupClients: Math.round(positive('storm-warmup', values['storm-warmup'], base.stormWarmupClients, 0)),
  };
  const list = (v: string | undefined) =>
    v
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  const scenarios = list(values.scenarios) ?? [...SCENARIO_IDS];
  for (const s of scenarios) {
    if (!/^[A-G](-[a-z0-9]+)?$/i.test(s) && !MQTT5_CASE_IDS.includes(s.toUpperCase()))
      throw new Error(`--scenarios: unknown scenario "${s}" (expected ${SCENARIO_IDS.join(', ')} or a case id such as D-2000)`);
  }
  const stamp = now.toISOString().slice(0, 19).replace(/[:T]/g, '-');
  return {
    profile,
    scenarios: scenarios.map((s) => s.toUpperCase().replace(/-(.*)$/, (m) => m.toLowerCase())),
    brokers: list(values.brokers),
    out: values.out ? resolve(values.out) : values.quick ? join(repoRoot, 'bench', 'out', `quick-${stamp}`) : join(repoRoot, 'bench'),
    pin: !values['no-pin'],
    keep: values.keep,
    note: values.note,
    cpuProf: values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined,
    help: values.help,
  };
}
