/**
 * A json_lines TCP receiver standing in for Logstash's `tcp { codec => json_lines }` input: counts
 * the lines mqprobe's capture sends, the highest event.sequence, and the events mqprobe reports as
 * dropped (capture-dropped), so the harness can prove what capture delivered. Listens on a free
 * loopback port, reports it over IPC and answers `stats` requests.
 */
import { createServer } from 'node:net';

export interface ReceiverStats {
  lines: number;
  bytes: number;
  /** Highest event.sequence seen (events are numbered from 1 per broker instance). */
  maxSequence: number;
  /** Sum of mqprobe.capture.dropped over the capture-dropped events received. */
  dropped: number;
  /** capture-dropped lines that were not valid JSON. */
  malformed: number;
}

export type ReceiverMessage = { type: 'listening'; port: number } | { type: 'stats'; stats: ReceiverStats };

const stats: ReceiverStats = { lines: 0, bytes: 0, maxSequence: 0, dropped: 0, malformed: 0 };
const NEWLINE = 10;
const SEQUENCE = Buffer.from('"sequence":');
const DROPPED = Buffer.from('capture-dropped');

/** Reads the lines of one connection; cheap per line (a count), JSON only where it matters. */
function consume(lines: Buffer): void {
  let n = 0;
  for (let i = lines.indexOf(NEWLINE); i !== -1; i = lines.indexOf(NEWLINE, i + 1)) n++;
  stats.lines += n;
  // one sink writes in sequence order: the last line holds the highest sequence so far
  const lastStart = lines.lastIndexOf(NEWLINE, lines.length - 2) + 1;
  const s = lines.indexOf(SEQUENCE, lastStart);
  if (s !== -1)
    stats.maxSequence = Math.max(
      stats.maxSequence,
      parseInt(lines.toString('latin1', s + SEQUENCE.length, s + SEQUENCE.length + 16), 10) || 0,
    );
  for (let d = lines.indexOf(DROPPED); d !== -1; d = lines.indexOf(DROPPED, d + 1)) {
    const start = lines.lastIndexOf(NEWLINE, d) + 1;
    const end = lines.indexOf(NEWLINE, d);
    try {
      const e = JSON.parse(lines.toString('utf8', start, end)) as {
        event?: { action?: string };
        mqprobe?: { capture?: { dropped?: number } };
      };
      if (e.event?.action === 'capture-dropped') stats.dropped += e.mqprobe?.capture?.dropped ?? 0;
    } catch {
      stats.malformed++;
    }
    d = end;
  }
}

const server = createServer((socket) => {
  let rest: Buffer | undefined;
  socket.on('data', (chunk: Buffer) => {
    stats.bytes += chunk.length;
    const buf = rest ? Buffer.concat([rest, chunk]) : chunk;
    const cut = buf.lastIndexOf(NEWLINE) + 1;
    if (cut > 0) consume(buf.subarray(0, cut));
    rest = cut < buf.length ? Buffer.from(buf.subarray(cut)) : undefined;
  });
  socket.on('error', () => undefined);
});
server.listen(0, '127.0.0.1', () => {
  process.send?.({ type: 'listening', port: (server.address() as { port: number }).port } satisfies ReceiverMessage);
});
process.on('message', (m: { cmd?: string }) => {
  if (m.cmd === 'stats') process.send?.({ type: 'stats', stats } satisfies ReceiverMessage);
});
process.on('disconnect', () => process.exit(0));
