import type { SysFigure } from '../broker/sys-figures.js';
import type { CaptureStats } from './index.js';
import { folderName } from './sinks/index.js';

/**
 * `$SYS/broker/capture_sink/<sink>/…` of each sink (the same figures as /metrics, by the sink's name made
 * one topic level: its spool folder name, e.g. `kafka_127.0.0.1_9092_mqtt-capture`).
 */
export function captureSysFigures(stats: CaptureStats): SysFigure[] {
  return stats.sinks.flatMap((s): SysFigure[] => {
    const at = `capture_sink/${folderName(s.name)}`;
    return [
      [`${at}/state`, s.down ? 'failing' : 'delivering'],
      [`${at}/delivered`, s.delivered],
      [`${at}/queued`, s.queued],
      [`${at}/spool_bytes`, s.spoolBytes],
      [`${at}/dropped`, s.dropped],
      [`${at}/failures`, s.failures],
      [`${at}/refused`, s.refused],
    ];
  });
}
