import { basename, dirname } from 'node:path';
import { ConfigError } from '../../broker/config/errors.js';
import type { BeatDefinition, BeatRecord, Bridge, BridgeContext } from '../contract.js';
import { Tailer, type TailFile, type TailSource } from '../shared/tailer.js';
import { TailStats } from '../shared/tail-stats.js';
import { topicPath } from '../shared/topic.js';
import { camelCase, toNgsiEntity } from '../shared/ngsi.js';
import {
  glogStatus,
  osqueryResultRows,
  osqueryStatus,
  OsqueryLogError,
  parseJsonObject,
  type OsqueryResultRow,
  type OsqueryStatus,
} from '../shared/osquery-log.js';

export interface FleetConfig {
  resultLogs: string[];
  statusLogs: string[];
  start: 'beginning' | 'end';
  maxLineBytes: number;
}

type LogKind = 'result' | 'status';

export const fleetBeat: BeatDefinition<FleetConfig> = {
  name: 'fleet',
  doc: "Tails the osquery result and status logs that Fleet's filesystem logger (or osqueryd's) writes and publishes one message per result row on `beats/fleet/result/<query name>` and one per status line on `beats/fleet/status` (docs/beats.md).",
  keys: [
    {
      key: 'fleet_result_log',
      usage: '<file>',
      doc: "A result log (JSON lines: event, snapshot and batch/differential formats), e.g. Fleet's `osquery_result_log_file`; followed across rotation.",
      scope: 'beat',
      repeatable: true,
      set(c, v) {
        c.resultLogs.push(v.count(1).path());
      },
    },
    {
      key: 'fleet_status_log',
      usage: '<file>',
      doc: "A status log: JSON lines (Fleet's `osquery_status_log_file`) or glog text lines (osqueryd.INFO).",
      scope: 'beat',
      repeatable: true,
      set(c, v) {
        c.statusLogs.push(v.count(1).path());
      },
    },
    {
      key: 'fleet_start',
      usage: 'beginning | end',
      doc: 'Where to begin in logs that exist at the first start and have no checkpoint; a log that appears later (or after rotation) is read from its beginning.',
      default: 'end',
      scope: 'beat',
      set(c, v) {
        c.start = v.count(1).oneOf(['beginning', 'end']);
      },
    },
    {
      key: 'fleet_max_line_bytes',
      usage: '<size>',
      doc: 'Longer lines (a snapshot result is one line) are counted and skipped (k/M suffixes).',
      default: '16M',
      scope: 'beat',
      set(c, v) {
        c.maxLineBytes = v.count(1).bytes(0, { min: '256', max: '256M' });
      },
    },
  ],
  defaults: () => ({ resultLogs: [], statusLogs: [], start: 'end', maxLineBytes: 16 * 1024 * 1024 }),
  check(cfg, block) {
    if (cfg.resultLogs.length + cfg.statusLogs.length === 0) {
      throw new ConfigError(block.pos, 'fleet_result_log', 'beat fleet needs fleet_result_log <file> or fleet_status_log <file>');
    }
  },
  create: (cfg) => new FleetBridge(cfg),
};

class FleetBridge implements Bridge {
  private tailer?: Tailer;

  constructor(private readonly cfg: FleetConfig) {}

  async start(ctx: BridgeContext): Promise<void> {
    const stats = new TailStats(ctx);
    const kinds = new Map<TailSource, LogKind>();
    const source = (file: string, kind: LogKind) => {
      const name = basename(file);
      const src: TailSource = { dir: dirname(file), match: (n) => n === name };
      kinds.set(src, kind);
      return src;
    };
    const sources = [...this.cfg.resultLogs.map((f) => source(f, 'result')), ...this.cfg.statusLogs.map((f) => source(f, 'status'))];
    this.tailer = new Tailer(
      { sources, start: this.cfg.start, maxLineBytes: this.cfg.maxLineBytes, store: ctx.store, log: ctx.log },
      {
        ...stats.handlers(),
        lines: (file, lines, offsets) => this.lines(ctx, stats, kinds.get(file.source)!, file, lines, offsets),
      },
    );
    this.tailer.run().catch((err: Error) => ctx.fail(err));
  }

  async stop(): Promise<void> {
    await this.tailer?.stop();
  }

  private async lines(
    ctx: BridgeContext,
    stats: TailStats,
    kind: LogKind,
    file: TailFile,
    lines: string[],
    offsets: number[],
  ): Promise<void> {
    const emits: Promise<void>[] = [];
    for (let i = 0; i < lines.length; i++) {
      try {
        const records =
          kind === 'result' ? osqueryResultRows(parseJsonObject(lines[i])).map(resultRecord) : [statusRecord(parseStatus(lines[i]))];
        for (const r of records) emits.push(ctx.emit(r));
      } catch (err) {
        if (!(err instanceof OsqueryLogError)) throw err;
        stats.malformed(file, offsets[i], err.message);
      }
    }
    await Promise.all(emits);
    stats.published(emits.length);
  }
}

function parseStatus(line: string): OsqueryStatus {
  return line.startsWith('{') ? osqueryStatus(parseJsonObject(line)) : glogStatus(line);
}

function timeMs(o: { unixTime?: number; '@timestamp'?: string }): number | undefined {
  return o['@timestamp'] !== undefined ? Date.parse(o['@timestamp']) : undefined;
}

/** One row on `result/<query name>`; as NGSI, entity `urn:ngsi-ld:<CamelCase(query)>:<host>` with the row's columns as attributes. */
export function resultRecord(row: OsqueryResultRow): BeatRecord {
  const time = timeMs(row);
  return {
    subtopic: `result/${topicPath(row.name)}`,
    data: row,
    time,
    ngsi: (format) => {
      const { columns, name, action, hostIdentifier, decorations } = row;
      return toNgsiEntity(format, {
        type: camelCase(name),
        id: hostIdentifier ?? 'unknown-host',
        attributes: { ...columns, queryName: name, action, rowFormat: row.format, hostIdentifier, decorations },
        time,
      });
    },
  };
}

function statusRecord(status: OsqueryStatus): BeatRecord {
  const time = timeMs(status);
  return {
    subtopic: 'status',
    data: status,
    time,
    entity: { type: 'OsqueryStatus', id: status.hostIdentifier ?? 'unknown-host' },
  };
}
