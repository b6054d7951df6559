import type { Sink } from '../runner.js';

/** `capture_sink stdout`: one JSON line per event on standard output (the broker logs to stderr). */
export function stdoutSink(out: NodeJS.WritableStream = process.stdout): Sink {
  return {
    name: 'stdout',
    write: (lines) =>
      new Promise((resolve, reject) => {
        out.write(`${lines.join('\n')}\n`, (err) => (err ? reject(err) : resolve()));
      }),
    close: async () => {},
  };
}
