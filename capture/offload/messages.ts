import type { ConnInfo } from '../../broker/probe.js';
import type { CaptureConfig, SinkConfig } from '../config.js';
import type { DropEpisode, RunnerStats } from '../runner.js';

/** What the capture thread starts with (its workerData). */
export interface ThreadInit {
  config: Omit<CaptureConfig, 'sinks'>;
  sinks: { sink: SinkConfig; name: string }[];
  info: { name: string; id: string; version: string };
  idPrefix: string;
  backoff: { baseMs: number; maxMs: number };
  resendBytes?: number;
  logLevel: string;
}

/** A client as the capture thread knows it: sent once, before the first record that names it. */
export interface Descriptor {
  id: number;
  clientId: string;
  conn?: ConnInfo;
  user?: string;
}

/** A batch line: the event's line; '' when the format has no line for it; null when the thread never got it (counted as dropped). */
export type BatchLine = string | null;

export type ToThread =
  /** `bytes`: the tape's length and the lines' UTF-16 units, the measure of how far the thread is behind. */
  | { t: 'batch'; tape: ArrayBuffer; len: number; records: number; bytes: number; lines: BatchLine[]; defs: Descriptor[]; forget: number[] }
  | { t: 'report-drops' }
  | { t: 'stop'; deadlineMs: number };

export type FromThread =
  | { t: 'log'; line: string }
  | {
      t: 'progress';
      consumed: { events: number; bytes: number };
      stats: RunnerStats[];
      delivered: number[];
      failures: number[];
      dropped: { sink: number; reason: DropEpisode['reason']; n: number }[];
    }
  | { t: 'drops'; ep: DropEpisode }
  | { t: 'ready' }
  | { t: 'reported' }
  | { t: 'stopped' };
