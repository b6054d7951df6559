import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Teardown } from './broker.js';
import { repoRoot } from './paths.js';

const SRC = join(repoRoot, 'test', 'peers', 'lumberjack');
const BIN = join(SRC, 'bin', 'lumberjack-peer');

/**
 * The Lumberjack v2 receiver of test/peers/lumberjack (Elastic's go-lumber server, pinned in its
 * go.mod), built with `go build` once and again whenever its sources are newer than the binary.
 */
export function lumberjackBinary(): string {
  const newest = Math.max(...['main.go', 'go.mod', 'go.sum'].map((f) => statSync(join(SRC, f)).mtimeMs));
  if (!existsSync(BIN) || statSync(BIN).mtimeMs < newest) {
    mkdirSync(join(SRC, 'bin'), { recursive: true });
    execFileSync('go', ['build', '-o', BIN, '.'], { cwd: SRC, stdio: 'inherit', timeout: 300_000 });
  }
  return BIN;
}

export interface LumberjackPeer {
  port: number;
  /** The events received so far (copies included), parsed. */
  events(): Record<string, any>[];
  /** Stops acknowledging: windows stay unacknowledged (and the sender waits). */
  hold(): void;
  /** Acknowledges again, the held windows first. */
  ack(): void;
  /** Exits at once without acknowledging anything held (as a killed receiver would). */
  die(): Promise<void>;
}

/** Starts the receiver on `port` (0: a free one); killed in teardown. */
export async function startLumberjack(t: Teardown, port = 0): Promise<LumberjackPeer> {
  const child = spawn(lumberjackBinary(), ['-addr', `127.0.0.1:${port}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    return exited;
  });
  const events: Record<string, any>[] = [];
  let rest = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    const lines = (rest + d).split('\n');
    rest = lines.pop()!;
    for (const l of lines) if (l) events.push(JSON.parse(l) as Record<string, any>);
  });
  let err = '';
  const bound = await new Promise<number>((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      const m = /listening (\d+)/.exec(err);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`lumberjack peer exited (${code}): ${err}`)));
  });
  const say = (cmd: string) => child.stdin.write(`${cmd}\n`);
  return {
    port: bound,
    events: () => events,
    hold: () => say('hold'),
    ack: () => say('ack'),
    die: async () => {
      say('die');
      await exited;
    },
  };
}
