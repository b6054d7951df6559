import type { SinkIO } from '../runner.js';
import { LineBuffer } from './line-buffer.js';
import type { SinkDefinition } from './definition.js';

/** `capture_sink stdout`: one JSON line per event on standard output (the broker logs to stderr). */
export function stdoutSink(out: NodeJS.WritableStream = process.stdout): SinkIO {
  // a reader that went away (EPIPE) stays gone; it must not take the broker down either
  let gone = false;
  const failed = (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') gone = true;
  };
  out.on('error', failed);
  const lineBuffer = new LineBuffer();
  return {
    write: (lines) =>
      new Promise((resolve, reject) => {
        out.write(lineBuffer.encode(lines), (err?: NodeJS.ErrnoException | null) => {
          if (!err) return resolve();
          failed(err);
          reject(err);
        });
      }),
    close: async () => {},
    gone: () => gone,
  };
}

export const stdoutSinkDefinition: SinkDefinition = {
  kinds: ['stdout'],
  usage: 'stdout',
  parse: (v) => (v.count(1), { kind: 'stdout' }),
  name: () => 'stdout',
  brokerThread: true,
  create: (_c, env) => ({ io: stdoutSink(env.stdout), spools: false }),
};
