/**
 * Imported first by the `mqprobe` command (app/cli.ts), for its side effect: on V8 11 (Node 20) the
 * broker's hot functions are optimized after a quarter of V8's default interrupt budget.
 *
 * A freshly started broker meeting a connection storm runs its connect path in V8's interpreter
 * and baseline code until the default budget (67,584 bytecode units) has been spent in each function:
 * half of its CPU per connect (docs/scaling.md, "Connection storm, fourth pass"). With 4,096 the
 * password storm of `npm run bench` (E-password, 5,000 clients) went from 3,500 to 3,920 connects/s
 * (bench/RESULTS.md, "Connection storm, session 6"); steady-state throughput is unchanged.
 * The flag cannot go on the command line with BROKER_NODE_FLAGS (broker/node-flags.ts): V8 12 (Node 22)
 * removed it and Node refuses an unknown flag there. V8 12 and later count invocations instead, and
 * lowering those counts made the storm slower on Node 26 (4,597 → 4,077 connects/s), so they stay.
 */
import { setFlagsFromString } from 'node:v8';

const V8_MAJOR = Number(process.versions.v8.split('.')[0]);

if (V8_MAJOR < 12) setFlagsFromString('--interrupt-budget=4096');
