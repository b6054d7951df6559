import type { Sink } from '../runner.js';

/** `capture_sink stdout`: one JSON line per event on standard output (the broker logs to stderr). */
export function stdoutSink(out: NodeJS.WritableStream = process.stdout): Sink {
  // a closed pipe (EPIPE) must not take the broker down: each write's callback reports it to the runner
  out.on('error', () => {});
  return {
    name: 'stdout',
    write: (lines) =>
      new Promise((resolve, reject) => {
        out.write(`${lines.join('\n')}\n`, (err) => (err ? reject(err) : resolve()));
      }),
    close: async () => {},
  };
}
