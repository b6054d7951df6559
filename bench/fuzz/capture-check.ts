/** Reads a capture file line by line (it can be hundreds of MB) and checks the capture contract. */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

export interface CaptureCheck {
  lines: number;
  byAction: Record<string, number>;
  /** Lines that are not JSON, and places where `event.sequence` is not the line number (first 20). */
  problems: string[];
  problemCount: number;
}

/** Every line must be one JSON object, and `event.sequence` must run 1, 2, 3 … with no gap or repeat. */
export async function checkCapture(path: string): Promise<CaptureCheck> {
  const out: CaptureCheck = { lines: 0, byAction: {}, problems: [], problemCount: 0 };
  const problem = (p: string) => {
    if (out.problems.length < 20) out.problems.push(p);
    out.problemCount++;
  };
  for await (const line of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) {
    out.lines++;
    let e: { event?: { sequence?: unknown; action?: unknown } };
    try {
      e = JSON.parse(line);
    } catch (err) {
      problem(`line ${out.lines}: not JSON (${(err as Error).message}): ${line.slice(0, 200)}`);
      continue;
    }
    if (e.event?.sequence !== out.lines) problem(`line ${out.lines}: event.sequence ${JSON.stringify(e.event?.sequence)}, expected ${out.lines}`);
    const action = String(e.event?.action);
    out.byAction[action] = (out.byAction[action] ?? 0) + 1;
  }
  return out;
}
