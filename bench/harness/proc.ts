/** CPU time and memory of other processes, read from Linux /proc (undefined elsewhere). */
import { readFileSync } from 'node:fs';

/** utime + stime of a whole process (all its threads), in clock ticks. */
export function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: count fields after the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

/** Nanoseconds the main thread waited, runnable, for a CPU (second field of /proc/<pid>/schedstat). */
export function runqueueWaitNs(pid: number): number | undefined {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** Resident set size in KiB. */
export function rssKb(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** How fast a counter grows between the call and the returned function's call, as % of the wall time. */
function percentOfWall(read: () => number | undefined, toMs: (delta: number) => number): () => number | undefined {
  const v0 = read();
  const w0 = performance.now();
  return () => {
    const v1 = read();
    const ms = performance.now() - w0;
    if (v0 === undefined || v1 === undefined || ms <= 0) return undefined;
    return (toMs(v1 - v0) / ms) * 100;
  };
}

/** CPU % of one core used by `pid` (all its threads) between the call and the returned function's call. */
export function cpuMeter(pid: number | undefined, clockTicks: number): () => number | undefined {
  return pid === undefined
    ? () => undefined
    : percentOfWall(
        () => cpuTicks(pid),
        (ticks) => (ticks / clockTicks) * 1000,
      );
}

/**
 * % of the wall time the main thread of `pid` was ready to run but waited for a CPU: other load
 * on a pinned core shows here.
 */
export function waitMeter(pid: number | undefined): () => number | undefined {
  return pid === undefined
    ? () => undefined
    : percentOfWall(
        () => runqueueWaitNs(pid),
        (ns) => ns / 1e6,
      );
}

/** CPU % of one core used by this process since the call. */
export function selfCpuMeter(): () => number {
  const meter = percentOfWall(
    () => {
      const c = process.cpuUsage();
      return c.user + c.system;
    },
    (us) => us / 1000,
  );
  return () => meter() ?? 0;
}
