import { createReadStream } from 'node:fs';
import { ConfigError } from '../config/errors.js';

/** One line of a security file, with its 1-based line number. */
export interface NumberedLine {
  line: number;
  text: string;
}

export interface TextFileLimits {
  /** What the file is, for messages ("password file", "acl_file"). */
  what: string;
  maxBytes: number;
  maxLineBytes: number;
}

/**
 * Reads a small text file (password or ACL file) in full, refusing anything a human did not
 * write: more than `maxBytes` (also for FIFOs and devices, whose size stat cannot tell),
 * over-long lines, NUL bytes and bytes that are not UTF-8. Errors name file and line, never
 * the content. CRLF line ends are accepted.
 */
export async function readTextLines(path: string, limits: TextFileLimits): Promise<NumberedLine[]> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 64 * 1024 })) {
      size += (chunk as Buffer).length;
      if (size > limits.maxBytes)
        throw new ConfigError(undefined, undefined, `${path}: ${limits.what} is larger than ${limits.maxBytes} bytes`);
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(undefined, undefined, `${path}: cannot read ${limits.what}: ${e.code ?? e.message}`);
  }
  const bytes = Buffer.concat(chunks, size);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const lines: NumberedLine[] = [];
  let start = 0;
  for (let n = 1; start < bytes.length; n++) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    const raw = bytes.subarray(start, end > start && bytes[end - 1] === 0x0d ? end - 1 : end);
    const where = { file: path, line: n };
    if (raw.length > limits.maxLineBytes) throw new ConfigError(where, undefined, `line is longer than ${limits.maxLineBytes} bytes`);
    if (raw.includes(0)) throw new ConfigError(where, undefined, `line contains a NUL byte (is this a ${limits.what}?)`);
    let text: string;
    try {
      text = decoder.decode(raw);
    } catch {
      throw new ConfigError(where, undefined, `line is not valid UTF-8 text (is this a ${limits.what}?)`);
    }
    lines.push({ line: n, text });
    start = end + 1;
  }
  return lines;
}
