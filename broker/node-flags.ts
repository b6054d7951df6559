/**
 * The Node.js flags every way of starting the broker uses: the `mqprobe` command's shebang
 * (app/cli.ts), `npm start`, the container entrypoint and the benchmarks
 * (test/broker/node-flags.test.ts keeps them the same).
 *
 * A capture event lives from its publish until its sink's socket write: a few milliseconds, during
 * which Node's default young generation (16 MiB semi-spaces) fills up and copies it to the old
 * generation, which costs a full collection later. With 32 MiB semi-spaces events die young:
 * QoS 0 fan-in capturing every publish went from 62,276 to 71,257 msg/s (broker CPU per message
 * 17.8 → 15.5 µs) in bench/capture/fanin.ts; capture off and idle memory are unchanged.
 */
export const BROKER_NODE_FLAGS = ['--max-semi-space-size=32'] as const;
