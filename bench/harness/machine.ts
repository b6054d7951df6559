/** The machine and software a run measured, for RESULTS.md. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { nodeCommand, repoRoot } from './processes.js';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  kernel: string;
  node: string;
  mqprobe: string;
  commit: string;
  clockTicks: number;
  loadavg: number[];
}

function run(argv: string[]): string {
  const r = spawnSync(argv[0], argv.slice(1), { cwd: repoRoot, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}

export function machineInfo(): MachineInfo {
  const osRelease = (() => {
    try {
      return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? process.platform;
    } catch {
      return process.platform;
    }
  })();
  const commit = run(['git', 'rev-parse', '--short', 'HEAD']);
  const dirty = commit && run(['git', 'status', '--porcelain', '--untracked-files=no']) ? ' (with uncommitted changes in the tree)' : '';
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 1024 ** 3),
    os: osRelease,
    kernel: release(),
    node: process.version,
    mqprobe: run(nodeCommand('app/cli', ['--version'])) || 'unknown',
    commit: commit ? `${commit}${dirty}` : 'unknown (not a git checkout)',
    clockTicks: Number(run(['getconf', 'CLK_TCK'])) || 100,
    loadavg: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}
