import { hostname } from 'node:os';
import { basename } from 'node:path';
import { ConfigError } from '../../broker/config/errors.js';
import type { BeatDefinition, BeatRecord, Bridge, BridgeContext } from '../contract.js';
import { Tailer, type TailFile } from '../shared/tailer.js';
import { TailStats } from '../shared/tail-stats.js';
import { topicPath } from '../shared/topic.js';
import { applyHeaderLine, defaultTsvHeader, parseTsvRecord, ZeekLineError, type TsvHeader } from './tsv.js';
import { parseJsonRecord, stampRecord } from './record.js';
import { zeekEntity } from './ngsi.js';

export interface ZeekConfig {
  logDir?: string;
  start: 'beginning' | 'end';
  maxLineBytes: number;
  sensorId: string;
}

/** Header bytes read when resuming inside a TSV file whose header was seen before the restart. */
const HEAD_BYTES = 64 * 1024;

/** What the beat knows about one followed file. */
interface FileState {
  header: TsvHeader;
  /** From `#path`, `_path` or the file name. */
  logName: string;
}

export const zeekBeat: BeatDefinition<ZeekConfig> = {
  name: 'zeek',
  doc: 'Tails every `*.log` in a Zeek log directory, in JSON (`LogAscii::use_json=T`, json-streaming) or the default TSV format typed from its headers, and publishes one message per record on `beats/zeek/<log name>` (docs/beats.md).',
  keys: [
    {
      key: 'zeek_log_dir',
      usage: '<directory>',
      doc: 'The Zeek log directory to follow (e.g. /opt/zeek/logs/current); it may appear after the broker starts.',
      scope: 'beat',
      set(c, v) {
        c.logDir = v.count(1).path();
      },
    },
    {
      key: 'zeek_start',
      usage: 'beginning | end',
      doc: 'Where to begin in files that exist at the first start and have no checkpoint; files that appear later are read from their beginning.',
      default: 'end',
      scope: 'beat',
      set(c, v) {
        c.start = v.count(1).oneOf(['beginning', 'end']);
      },
    },
    {
      key: 'zeek_max_line_bytes',
      usage: '<size>',
      doc: 'Longer lines are counted (`mqprobe_beat_lines_total{outcome="oversized"}`) and skipped (k/M suffixes).',
      default: '1M',
      scope: 'beat',
      set(c, v) {
        c.maxLineBytes = v.count(1).bytes(0, { min: '256', max: '256M' });
      },
    },
    {
      key: 'zeek_sensor_id',
      usage: '<id>',
      doc: 'The sensor name in NGSI entity ids (`urn:ngsi-ld:Conn:<id>`) for `beat_format ngsi|ngsi-ld`.',
      default: 'the host name',
      scope: 'beat',
      set(c, v) {
        c.sensorId = v.count(1).word();
      },
    },
  ],
  defaults: () => ({ start: 'end', maxLineBytes: 1024 * 1024, sensorId: hostname() }),
  check(cfg, block) {
    if (!cfg.logDir) throw new ConfigError(block.pos, 'zeek_log_dir', 'beat zeek needs zeek_log_dir <directory>');
  },
  create: (cfg) => new ZeekBridge(cfg),
};

class ZeekBridge implements Bridge {
  private tailer?: Tailer;
  private readonly files = new Map<string, FileState>();

  constructor(private readonly cfg: ZeekConfig) {}

  async start(ctx: BridgeContext): Promise<void> {
    const stats = new TailStats(ctx);
    this.tailer = new Tailer(
      {
        sources: [{ dir: this.cfg.logDir!, match: (n) => n.endsWith('.log') }],
        start: this.cfg.start,
        maxLineBytes: this.cfg.maxLineBytes,
        store: ctx.store,
        log: ctx.log,
      },
      {
        ...stats.handlers(),
        lines: (file, lines, offsets) => this.lines(ctx, stats, file, lines, offsets),
        reset: (file) => this.files.delete(file.id),
        forget: (file) => this.files.delete(file.id),
      },
    );
    this.tailer.run().catch((err: Error) => ctx.fail(err));
  }

  async stop(): Promise<void> {
    await this.tailer?.stop();
  }

  private async state(file: TailFile, offset: number): Promise<FileState> {
    let st = this.files.get(file.id);
    if (st) return st;
    st = { header: defaultTsvHeader(), logName: logNameOf(file.name) };
    this.files.set(file.id, st);
    // resuming inside a file: its TSV header lies before the checkpoint
    if (offset > 0) {
      for (const line of (await file.readHead(HEAD_BYTES)).toString('utf8').split('\n')) {
        if (!line.startsWith('#')) break;
        this.header(st, line.replace(/\r$/, ''));
      }
    }
    return st;
  }

  private header(st: FileState, line: string): boolean {
    if (!applyHeaderLine(st.header, line)) return false;
    if (line.startsWith('#path') && st.header.path) st.logName = st.header.path;
    return true;
  }

  private async lines(ctx: BridgeContext, stats: TailStats, file: TailFile, lines: string[], offsets: number[]): Promise<void> {
    const st = await this.state(file, offsets[0]);
    // QoS 0 records of one batch share one promise: wait for each distinct one
    const emits: Promise<void>[] = [];
    let published = 0;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      try {
        if (line.charCodeAt(0) === 0x23 /* # */) {
          if (!this.header(st, line)) throw new ZeekLineError('unknown # directive');
          continue;
        }
        const rec = line.charCodeAt(0) === 0x7b /* { */ ? parseJsonRecord(line) : parseTsvRecord(st.header, line);
        const emitted = ctx.emit(this.record(st, rec));
        if (emitted !== emits[emits.length - 1]) emits.push(emitted);
        published++;
      } catch (err) {
        if (!(err instanceof ZeekLineError)) throw err;
        stats.malformed(file, offsets[i], err.message);
      }
    }
    await Promise.all(emits);
    stats.published(published);
  }

  private record(st: FileState, rec: Record<string, unknown>): BeatRecord {
    const log = typeof rec._path === 'string' && rec._path !== '' ? rec._path : st.logName;
    const time = stampRecord(rec);
    const sensor = this.cfg.sensorId;
    return {
      subtopic: topicPath(log),
      data: rec,
      time,
      ngsi: (format) => zeekEntity(format, log, sensor, rec, time),
    };
  }
}

/** `conn.log`, `conn.2024-05-01-10-00-00.log` → `conn`. */
function logNameOf(fileName: string): string {
  return basename(fileName).split('.')[0] || fileName;
}
