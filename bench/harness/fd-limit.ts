import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Descriptors a process needs besides its connections (files, pipes, the listener, libuv's). */
const SPARE = 4096;

/** This process's soft limit of open files (Linux: /proc/self/limits). */
export function openFilesLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === 'unlimited' ? Infinity : Number(soft);
}

/** Whether this process's open-files limit holds `connections` sockets and what else it needs. */
export const fitsOpenFiles = (connections: number): boolean => openFilesLimit() >= connections + SPARE;

/**
 * Raises this process's open-files limit so that it (the load generator) and the brokers it starts,
 * which inherit it, can each hold `connections` sockets: D-50000 needs ~54,000 where shells give
 * 1,024 to 20,000. Node has no setrlimit, so util-linux `prlimit` sets it on this process (root
 * with CAP_SYS_RESOURCE, or a hard limit high enough). Returns why it could not, or undefined.
 */
export function raiseOpenFiles(connections: number): string | undefined {
  const needed = connections + SPARE;
  if (openFilesLimit() >= needed) return undefined;
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${needed}:${needed}`], { stdio: 'pipe' });
  } catch (err) {
    const why = ((err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message).split('\n')[0];
    return (
      `${connections.toLocaleString('en-US')} connections need an open-files limit of ${needed}, this process has ` +
      `${openFilesLimit()} and prlimit could not raise it (${why}); raise the hard limit (ulimit -Hn, CAP_SYS_RESOURCE) first`
    );
  }
  return openFilesLimit() >= needed ? undefined : `the open-files limit stayed below ${needed} after prlimit`;
}
