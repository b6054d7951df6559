import type { BridgeContext } from '../contract.js';
import type { TailEvent, TailFile, TailHandlers } from './tailer.js';
import { counter, gauge } from '../../broker/metrics.js';

/**
 * Counting and logging for beats that tail files: lines published, malformed (did not parse) and
 * oversized (skipped), file events (opened, renamed, truncated, closed, directory missing), and
 * the number of files followed. A broken line is logged once per file at warn level, then at debug
 * level (with file and byte offset, never its content: logs may carry secrets).
 */
export class TailStats {
  private readonly lines;
  private readonly events;
  private readonly files;
  private readonly warned = new Set<string>();
  private open = 0;

  constructor(private readonly ctx: BridgeContext) {
    const reg = ctx.metrics;
    this.lines = counter(reg, 'mqprobe_beat_lines_total', 'Lines a file-tailing beat read, by outcome (published, malformed, oversized).', [
      'beat',
      'outcome',
    ]);
    this.events = counter(
      reg,
      'mqprobe_beat_file_events_total',
      'File events of a file-tailing beat (opened, renamed, truncated, closed, dir-missing).',
      ['beat', 'event'],
    );
    this.files = gauge(reg, 'mqprobe_beat_files', 'Files a file-tailing beat follows.', ['beat']);
    this.files.set({ beat: ctx.name }, 0);
  }

  published(n: number): void {
    this.lines.inc({ beat: this.ctx.name, outcome: 'published' }, n);
  }

  malformed(file: TailFile, offset: number, reason: string): void {
    this.lines.inc({ beat: this.ctx.name, outcome: 'malformed' });
    const level = this.warned.has(file.id) ? 'debug' : 'warn';
    this.warned.add(file.id);
    this.ctx.log[level](
      { file: file.path, offset },
      `skipped a malformed line in ${file.path} at byte ${offset}: ${reason.slice(0, 200)}${level === 'warn' ? ' (further ones in this file are logged at debug level)' : ''}`,
    );
  }

  /** The handlers a Tailer takes for counting; the beat adds `lines` and its own state handling. */
  handlers(): Pick<TailHandlers, 'oversized' | 'event'> {
    return {
      oversized: (file, bytes, offset) => {
        this.lines.inc({ beat: this.ctx.name, outcome: 'oversized' });
        this.ctx.log.warn(
          { file: file.path, offset, bytes },
          `skipped a line of ${bytes}+ bytes in ${file.path} at byte ${offset} (over the maximum line size)`,
        );
      },
      event: (kind: TailEvent, file) => {
        this.events.inc({ beat: this.ctx.name, event: kind });
        if (kind === 'opened') this.open++;
        if (kind === 'closed') {
          this.open--;
          if (file) this.warned.delete(file.id);
        }
        this.files.set({ beat: this.ctx.name }, this.open);
      },
    };
  }
}
