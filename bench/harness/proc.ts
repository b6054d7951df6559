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

/** Resident set size in KiB. */
export function rssKb(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** CPU % of one core used by `pid` between start() and the returned function's call. */
export function cpuMeter(pid: number | undefined, clockTicks: number): () => number | undefined {
  if (pid === undefined) return () => undefined;
  const t0 = cpuTicks(pid);
  const w0 = performance.now();
  return () => {
    const t1 = cpuTicks(pid);
    const ms = performance.now() - w0;
    if (t0 === undefined || t1 === undefined || ms <= 0) return undefined;
    return (((t1 - t0) / clockTicks) * 1000 * 100) / ms;
  };
}

/** CPU % of one core used by this process since the call. */
export function selfCpuMeter(): () => number {
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  return () => {
    const c = process.cpuUsage(c0);
    return ((c.user + c.system) / 1000 / (performance.now() - w0)) * 100;
  };
}
