/**
 * The capture thread: builds, serialises and delivers the events of the offloaded sinks (file,
 * logstash, elasticsearch, opensearch) with the same runners, spools and sinks the broker's thread
 * would use. It gets batches in event.sequence order (capture/offload/tape.ts) and reports back
 * its progress, counters, drop episodes and log lines (capture/offload/thread.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import type { CaptureConfig } from '../config.js';
import type { DropEpisode } from '../runner.js';
import { startRunner } from '../runners.js';
import { BatchReader, type Batch } from './batch-reader.js';
import type { FromThread, ThreadInit, ToThread } from './messages.js';

const init = workerData as ThreadInit;
const port = parentPort!;
const send = (m: FromThread): void => port.postMessage(m);
// the broker's logger writes every line; this one only hands them over
const log = pino({ level: init.logLevel, base: undefined, timestamp: false }, { write: (line: string) => send({ t: 'log', line }) });

const config: CaptureConfig = { ...init.config, sinks: init.sinks.map((s) => s.sink) };
const delivered = init.sinks.map(() => 0);
const failures = init.sinks.map(() => 0);
const dropped = new Map<string, { sink: number; reason: DropEpisode['reason']; n: number }>();
let changed = false;

const env = {
  config,
  sinkEnv: { config, log, resendBytes: init.resendBytes },
  log,
  backoff: init.backoff,
  run: init.info.id,
  onDrops: (ep: DropEpisode) => send({ t: 'drops', ep }),
};
const runners = init.sinks.map((s, sink) =>
  startRunner(config.sinks[sink], s.name, env, {
    delivered: (n) => ((delivered[sink] += n), (changed = true)),
    failure: () => ((failures[sink] += 1), (changed = true)),
    dropped: (reason, n) => {
      const key = `${sink} ${reason}`;
      const d = dropped.get(key) ?? { sink, reason, n: 0 };
      d.n += n;
      dropped.set(key, d);
      changed = true;
    },
  }),
);

const reader = new BatchReader(init, config);
const consumed = { events: 0, bytes: 0 };
let reported = 0;
let lastStats = '';

/** Counters since the last report, the runners' state, and how far the thread has got. */
function progress(): void {
  const stats = runners.map((r) => r.stats());
  const text = JSON.stringify(stats);
  if (!changed && text === lastStats && consumed.events === reported) return;
  lastStats = text;
  reported = consumed.events;
  send({
    t: 'progress',
    consumed: { ...consumed },
    stats,
    delivered: [...delivered],
    failures: [...failures],
    dropped: [...dropped.values()],
  });
  delivered.fill(0);
  failures.fill(0);
  dropped.clear();
  changed = false;
}
// queue and spool sizes change as sinks deliver, with no batch coming in
const ticker = setInterval(progress, 100);

function offer(line: string | undefined, seq: number): void {
  if (line !== undefined) for (const r of runners) r.offer(line, seq);
}

function lost(seq: number): void {
  for (const r of runners) r.lost(seq);
}

function batch(m: Batch): void {
  reader.read(m, offer, lost);
  consumed.events += m.records;
  consumed.bytes += m.bytes;
  // the broker's thread bounds what is in flight by this count: reported often enough under load, not per batch
  if (consumed.events - reported >= 8192) progress();
}

send({ t: 'ready' });
port.on('message', (m: ToThread) => {
  switch (m.t) {
    case 'batch':
      return batch(m);
    case 'report-drops':
      for (const r of runners) r.reportDrops();
      return send({ t: 'reported' });
    case 'stop':
      clearInterval(ticker);
      void Promise.all(runners.map((r) => r.stop(m.deadlineMs))).then(() => {
        changed = true;
        progress();
        send({ t: 'stopped' });
      });
  }
});
