import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import pino from 'pino';
import type { LogDest } from '../config/types.js';
import type { LogSettings } from '../config/types.js';
import {
  enabledTypes,
  lineText,
  syslogSeverity,
  timestampPrefix,
  topicFor,
  typeOf,
  type LogRecord,
  type MosqLogType,
} from './mosquitto-format.js';

/** Publishes one message as the broker itself (`$SYS/broker/log/…`). */
export type LogPublisher = (topic: string, payload: string) => void;

type Writer = { write(s: string): unknown; flushSync?(): void; end?(): void };

/** How long a log line may wait for others to share its write, and how many bytes are written at once. */
const LINGER_MS = 20;
const BATCH_BYTES = 16 * 1024;

/** syslog facility numbers: LOG_DAEMON, and LOG_LOCAL0 + n for log_facility n. */
const LOG_DAEMON = 3;
const LOG_LOCAL0 = 16;

/**
 * The one stream pino writes into: it takes each JSON record, keeps it when its Mosquitto type is
 * enabled (log_type), renders it (Mosquitto text or the JSON as it is) and hands it to every
 * log_dest — stdout, stderr, file (appended), syslog and topic, as Mosquitto's logging.c does.
 */
export class LogDestinations {
  private readonly types: Set<MosqLogType>;
  private readonly writers: Writer[] = [];
  private syslog?: Writer;
  private readonly toTopic: boolean;
  private publisher?: LogPublisher;
  /** Lines not yet handed to the writers (see `write`), and the timer that will. */
  private pending = '';
  private lingering?: NodeJS.Timeout;

  /** `runAs`: the account the broker will drop to, so that no helper process stays root. */
  constructor(
    dests: LogDest[],
    logType: Set<string>,
    private readonly settings: LogSettings,
    verbose: boolean,
    runAs?: { uid: number; gid: number },
  ) {
    this.types = enabledTypes(logType, verbose);
    const list = dests.length ? dests : [{ kind: 'stderr' as const }];
    // Synchronous writes, as Mosquitto's: lines are already batched (one write per LINGER_MS), and an
    // asynchronous write still in flight could land after the last words of a failed start
    for (const d of list) {
      if (d.kind === 'stdout') this.writers.push(pino.destination({ fd: 1, sync: true }));
      else if (d.kind === 'stderr') this.writers.push(pino.destination({ fd: 2, sync: true }));
      else if (d.kind === 'file') this.writers.push(pino.destination({ fd: openLogFile(d.path), sync: true }));
      else if (d.kind === 'syslog') this.syslog = openSyslog(settings, runAs);
    }
    this.toTopic = list.some((d) => d.kind === 'topic');
  }

  /** Whether lines of this type are printed at all (so a caller can skip building them). */
  enabled(type: MosqLogType): boolean {
    return this.types.has(type);
  }

  /** Starts `log_dest topic`: before the broker runs there is nobody to publish, as in Mosquitto. */
  setPublisher(publish: LogPublisher | undefined): void {
    if (this.toTopic) this.publisher = publish;
  }

  /** pino's stream interface: one JSON record per call. */
  write(json: string): void {
    let rec: LogRecord;
    try {
      rec = JSON.parse(json) as LogRecord;
    } catch {
      return; // pino only writes what it serialised; nothing else reaches this stream
    }
    this.writeRecord(rec, () => json.trimEnd());
  }

  /**
   * One record, as `write` has it after parsing: `json` gives its JSON text (log_format json), built
   * only when needed. Mosquitto's client lines come here directly (logger.ts, `mosquittoLineWriter`).
   */
  writeRecord(rec: LogRecord, json: () => string): void {
    const type = typeOf(rec);
    if (!this.types.has(type)) return;
    const mosquitto = this.settings.format === 'mosquitto';
    const text = mosquitto ? lineText(rec) : json();
    if (this.writers.length) {
      // written together, at most LINGER_MS late: a connection storm logs two lines per client, and
      // each write to a file or pipe was a call into sonic-boom and an fs.write of its own
      if (!this.pending) this.lingering = setTimeout(this.writePending, LINGER_MS);
      this.pending += `${mosquitto ? timestampPrefix(this.settings, rec.time) : ''}${text}\n`;
      if (this.pending.length >= BATCH_BYTES) this.writePending();
    }
    // syslog stamps its own time; the topic always carries Unix seconds, and never debug lines (logging.c)
    this.syslog?.write(
      `<${(this.settings.facility === undefined ? LOG_DAEMON : LOG_LOCAL0 + this.settings.facility) * 8 + syslogSeverity(type)}>${text}\n`,
    );
    if (this.publisher && type !== 'debug') this.publisher(topicFor(type), `${mosquitto ? `${Math.floor(rec.time / 1000)}: ` : ''}${text}`);
  }

  private readonly writePending = (): void => {
    clearTimeout(this.lingering);
    const lines = this.pending;
    if (!lines) return;
    this.pending = '';
    for (const w of this.writers) w.write(lines);
  };

  flushSync(): void {
    this.writePending();
    for (const w of this.writers) {
      try {
        w.flushSync?.();
      } catch {
        // a destination that cannot take more (a closed pipe) has nothing left to flush
      }
    }
  }

  /** pino calls flush(cb) from logger.flush(). */
  flush(cb?: (err?: Error) => void): void {
    this.flushSync();
    cb?.();
  }

  end(): void {
    this.flushSync();
    this.syslog?.end?.();
  }
}

/** Opened now, synchronously, as Mosquitto does before it drops root: the broker may not be allowed to later. */
function openLogFile(path: string): number {
  mkdirSync(dirname(path), { recursive: true });
  return openSync(path, 'a');
}

/**
 * `log_dest syslog` through util-linux `logger`: Node cannot open the datagram socket /dev/log
 * usually is, and logger writes exactly what glibc's syslog(3) writes there (`<PRI>time tag[pid]: msg`).
 * One long-lived logger process reads our lines, each with its own priority (`--prio-prefix`).
 * Without the socket, lines go to stderr with one warning, like syslog(3)'s LOG_CONS console fallback.
 */
function openSyslog(settings: LogSettings, runAs: { uid: number; gid: number } | undefined): Writer {
  const stderr = pino.destination({ fd: 2, sync: true });
  const fallback = (why: string): Writer => {
    stderr.write(`mqprobe: log_dest syslog: ${why}; syslog lines go to stderr instead\n`);
    return { write: (s: string) => stderr.write(s.replace(/^<\d+>/, '')) };
  };
  if (!existsSync(settings.syslogSocket)) return fallback(`no syslog socket at ${settings.syslogSocket}`);
  let child: ChildProcess;
  try {
    child = spawn(
      'logger',
      ['--prio-prefix', '--socket', settings.syslogSocket, '--socket-errors=on', '--tag', 'mqprobe', `--id=${process.pid}`],
      { stdio: ['pipe', 'ignore', 'pipe'], uid: runAs?.uid, gid: runAs?.gid },
    );
  } catch (err) {
    return fallback(`cannot run logger (${(err as Error).message})`);
  }
  let alive = true;
  child.on('error', (err) => {
    alive = false;
    stderr.write(`mqprobe: log_dest syslog: cannot run logger (${err.message}); syslog lines are lost\n`);
  });
  child.on('exit', () => (alive = false));
  child.stderr!.on('data', (d: Buffer) => stderr.write(`mqprobe: log_dest syslog: ${d.toString().trim()}\n`));
  child.stdin!.on('error', () => (alive = false));
  // the logger child must not keep the broker alive, nor be what keeps it from exiting
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  return {
    write: (s: string) => alive && child.stdin!.write(s),
    end: () => child.stdin!.end(),
  };
}
