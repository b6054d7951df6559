/** Reads a capture file and its rotated predecessors line by line (together they can be GBs) and checks the capture contract. */
import { createReadStream, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface CaptureCheck {
  files: number;
  lines: number;
  byAction: Record<string, number>;
  /** Lines that are not JSON, and places where `event.sequence` is not the line number (first 20). */
  problems: string[];
  problemCount: number;
}

/** The file sink's files, oldest first: `path.N` … `path.1` (capture_file_max_bytes rotation), then `path`. */
function filesOf(path: string): string[] {
  const rotated: string[] = [];
  for (let n = 1; existsSync(`${path}.${n}`); n++) rotated.unshift(`${path}.${n}`);
  return [...rotated, path];
}

/** A parsed capture line: JSON whose shape the checks below probe field by field. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type CaptureLine = Record<string, any>;

/**
 * Every line must be one JSON object, and `event.sequence` must run 1, 2, 3 … with no gap or
 * repeat across the rotated files (a missing oldest file shows as a sequence not starting at 1).
 */
export async function checkCapture(path: string, onEvent?: (e: CaptureLine) => void): Promise<CaptureCheck> {
  const files = filesOf(path);
  const out: CaptureCheck = { files: files.length, lines: 0, byAction: {}, problems: [], problemCount: 0 };
  const problem = (p: string) => {
    if (out.problems.length < 20) out.problems.push(p);
    out.problemCount++;
  };
  for (const file of files) {
    let lineInFile = 0;
    for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
      out.lines++;
      lineInFile++;
      let e: CaptureLine;
      try {
        e = JSON.parse(line);
      } catch (err) {
        problem(`${file}:${lineInFile}: not JSON (${(err as Error).message}): ${line.slice(0, 200)}`);
        continue;
      }
      if (e.event?.sequence !== out.lines)
        problem(`${file}:${lineInFile}: event.sequence ${JSON.stringify(e.event?.sequence)}, expected ${out.lines}`);
      const action = String(e.event?.action);
      out.byAction[action] = (out.byAction[action] ?? 0) + 1;
      onEvent?.(e);
    }
  }
  return out;
}
