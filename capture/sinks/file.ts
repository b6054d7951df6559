import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SinkIO } from '../runner.js';
import { LineBuffer } from './line-buffer.js';
import type { SinkDefinition } from './definition.js';

export interface FileSinkOptions {
  path: string;
  /** Rotate before a write would take the file past this size. */
  maxBytes: number;
  /** Rotated files kept (`path.1` newest … `path.N`); 0 keeps none. */
  maxFiles: number;
}

/**
 * `capture_sink file <path>`: appends event lines; rotates by size the way logrotate's `create`
 * mode does (rename, then a new file), so `tail -F` follows across rotations. A file never passes
 * the limit unless one event alone is larger.
 */
export function fileSink(o: FileSinkOptions): SinkIO {
  let fh: FileHandle | undefined;
  const lineBuffer = new LineBuffer();
  let size = 0;
  const openFile = async () => {
    await mkdir(dirname(o.path), { recursive: true });
    fh = await open(o.path, 'a', 0o640);
    size = (await fh.stat()).size;
    return fh;
  };
  const rotate = async () => {
    await fh?.close();
    fh = undefined;
    if (o.maxFiles === 0) await rm(o.path, { force: true });
    else {
      await rm(`${o.path}.${o.maxFiles}`, { force: true });
      for (let i = o.maxFiles - 1; i >= 1; i--) {
        if (await exists(`${o.path}.${i}`)) await rename(`${o.path}.${i}`, `${o.path}.${i + 1}`);
      }
      await rename(o.path, `${o.path}.1`);
    }
  };
  return {
    async write(lines) {
      let h = fh ?? (await openFile());
      let chunk: string[] = [];
      let chunkBytes = 0;
      const flush = async () => {
        if (!chunk.length) return;
        try {
          await h.write(lineBuffer.encode(chunk));
        } catch (err) {
          // reopen next time (the file may have been removed or its disk filled); the runner resends the batch
          await h.close().catch(() => {});
          fh = undefined;
          throw err;
        }
        size += chunkBytes;
        chunk = [];
        chunkBytes = 0;
      };
      for (const line of lines) {
        const bytes = Buffer.byteLength(line) + 1;
        // rotate before the line that would pass the limit (a line longer than the limit gets a file of its own)
        if (size + chunkBytes > 0 && size + chunkBytes + bytes > o.maxBytes) {
          await flush();
          await rotate();
          h = await openFile();
        }
        chunk.push(line);
        chunkBytes += bytes;
      }
      await flush();
    },
    async close() {
      await fh?.close();
      fh = undefined;
    },
  };
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

export const fileSinkDefinition: SinkDefinition = {
  kinds: ['file'],
  usage: 'file <path>',
  parse: (v) => (v.count(2), { kind: 'file', target: v.path(1) }),
  name: (c) => `file:${c.target}`,
  create: (c, env) => ({
    io: fileSink({ path: c.target!, maxBytes: env.config.fileMaxBytes, maxFiles: env.config.fileMaxFiles }),
    spools: false,
  }),
};
