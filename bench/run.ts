/**
 * `npm run bench`: mqprobe side by side with Mosquitto and bare Aedes (scenarios A–G), see
 * bench/README.md. Exits 1 when a run failed or mqprobe lost messages, 2 on bad options.
 */
import { runBench } from './harness/bench.js';
import { parseOptions, USAGE } from './harness/options.js';

let opts;
try {
  opts = parseOptions(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).message}\n\n${USAGE}`);
  process.exit(2);
}
if (opts.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
// the command as RESULTS.md shows it: the note is printed on its own there
const args = process.argv.slice(2).map((a, i, all) => (all[i - 1] === '--note' ? '"…"' : /[\s"']/.test(a) ? JSON.stringify(a) : a));
try {
  const failed = await runBench(opts, {
    out: process.stdout,
    isTTY: !!process.stdout.isTTY,
    command: ['npm run bench', ...(args.length ? ['--', ...args] : [])].join(' '),
  });
  process.exit(failed ? 1 : 0);
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(1);
}
