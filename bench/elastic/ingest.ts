/**
 * Sustained capture events per second into a real Elasticsearch (the test distribution from
 * Maven Central, started locally with a 512 MB heap) through the capture sink.
 *
 *   npx tsx bench/elastic/ingest.ts [seconds=30] [batch=2000] [opensearch]
 *
 * Prints one JSON line: events, seconds, events/s, and the sink's counters.
 */
import pino from 'pino';
import { startSearchPeer } from '../../test/helpers/elasticsearch.js';
import { publishEvents } from '../../test/elastic/events.js';
import { runElasticSetup } from '../../elastic/setup-command.js';
import { SearchSink } from '../../capture/sinks/elasticsearch.js';
import { dataStreamName } from '../../elastic/assets.js';

const seconds = Number(process.argv[2] ?? 30);
const batchSize = Number(process.argv[3] ?? 2000);
const product = process.argv[4] === 'opensearch' ? 'opensearch' : 'elasticsearch';

const cleanups: (() => unknown)[] = [];
try {
  const peer = await startSearchPeer({ teardown: (fn) => cleanups.push(fn) }, product);
  await runElasticSetup({ es: peer.url, namespace: 'bench', ilmDeleteAfter: '1d' }, { out: () => {} });
  const sink = new SearchSink({ kind: product, url: new URL(peer.url), elastic: { namespace: 'bench' }, log: pino({ level: 'warn' }) });
  // Pre-serialised batches, as the capture pipeline hands them over; each gets fresh event ids.
  const started = Date.now();
  let sent = 0;
  while (Date.now() - started < seconds * 1000) {
    await sink.write(publishEvents(batchSize, `b${sent}`));
    sent += batchSize;
  }
  const elapsed = (Date.now() - started) / 1000;
  await fetch(`${peer.url}/${dataStreamName('bench')}/_refresh`, { method: 'POST' });
  const stored = ((await (await fetch(`${peer.url}/${dataStreamName('bench')}/_count`)).json()) as { count: number }).count;
  console.log(
    JSON.stringify({
      product,
      version: peer.version,
      batchSize,
      events: sent,
      stored,
      seconds: Number(elapsed.toFixed(1)),
      eventsPerSecond: Math.round(sent / elapsed),
      sink: sink.stats(),
    }),
  );
  await sink.close();
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
