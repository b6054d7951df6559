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

/**
 * Raises this process's open-files limit so that it (the load generator) and the brokers it starts,
 * which inherit it, can each hold `connections` sockets: D-50000 needs ~54,000 where shells give
 * 1,024 to 20,000. Node has no setrlimit, so util-linux `prlimit` sets it on this process (root, or
 * a hard limit high enough). Fails with what to do when it cannot.
 */
export function raiseOpenFiles(connections: number): void {
  const needed = connections + SPARE;
  if (openFilesLimit() >= needed) return;
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${needed}:${needed}`], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(
      `${connections.toLocaleString('en-US')} connections need an open-files limit of ${needed}; prlimit could not raise it ` +
        `(${(err as Error).message.split('\n')[0]}): run as root or with \`ulimit -n ${needed}\``,
      { cause: err },
    );
  }
  if (openFilesLimit() < needed) throw new Error(`the open-files limit stayed below ${needed} after prlimit`);
}
