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
 * Idle memory checked again after engine patches 55–57 (bench/memory/idle-heap.ts --rss-only, 5,000
 * clients, two runs each, load average 12–16): RSS growth per client 5.9 and 6.5 KiB with this flag,
 * 8.2 and 6.5 without, 6.9 and 7.8 with 16 MiB, 6.8 and 6.6 with V8's memory reducer starting after
 * 1 s instead of 8 (Node floor 4.2, 4.5). The bench's D-5000 on a quiet machine (load 2–3, two rounds
 * each, the floor with the same flags): 6.5 and 7.3 KiB with the flag (floor 4.4, 4.3), 8.0 and 8.0
 * without (floor 3.7, 3.6). No setting is better beyond the noise, so the flag stays.
 */
export const BROKER_NODE_FLAGS = ['--max-semi-space-size=32'] as const;
