/**
 * capture/queue/disk.ts on real files: order, acknowledgement and segment deletion, replay of an
 * earlier run from its checkpoint, the byte bound, and what a crash or a hostile hand leaves on
 * disk (a half-written record, a damaged segment, a checkpoint that is not one).
 */
import t from 'tap';
import { appendFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../app/config.js';
import { SinkRunner } from '../../capture/runner.js';
import { until } from '../helpers/mqtt.js';
import { DiskQueue, type QueuedRecord } from '../../capture/queue/disk.js';
import { lastQueued } from '../../capture/queue/state.js';
import { startTestBroker, tempDir } from '../helpers/broker.js';

const log = pino({ level: 'silent' });
const open = (dir: string, over: Partial<ConstructorParameters<typeof DiskQueue>[0]> = {}) =>
  new DiskQueue({ dir, run: 'run-a', maxBytes: 1 << 20, syncMs: 0, cacheMax: 100, log, ...over });
const line = (i: number) => JSON.stringify({ event: { sequence: i }, message: `event ${i} ✓` });

/** Takes and acknowledges everything, `batch` records at a time. */
function drain(q: DiskQueue, batch = 50): QueuedRecord[] {
  const all: QueuedRecord[] = [];
  for (;;) {
    const recs = q.peek(batch, 1 << 20);
    if (!recs.length) return all;
    all.push(...recs);
    q.ack(recs);
  }
}

t.test('in order through memory and disk (past the cache), acknowledged segments deleted', async (t) => {
  const dir = tempDir();
  const q = open(dir, { maxBytes: 1 << 20, cacheMax: 100 });
  let taken = 0;
  for (let i = 1; i <= 5000; i++) if (q.append(line(i), i)) taken++;
  t.equal(taken, 5000, 'all taken');
  t.equal(q.queued, 5000);
  const a = q.peek(10, 1 << 20);
  t.same(q.peek(10, 1 << 20), a, 'the same records again until acknowledged');
  const got = drain(q);
  t.same(
    got.map((r) => r.seq),
    Array.from({ length: 5000 }, (_, i) => i + 1),
    'every record once, in order',
  );
  t.same(got.map((r) => r.line).slice(0, 3), [line(1), line(2), line(3)], 'lines intact (UTF-8 included)');
  t.equal(q.queued, 0);
  t.ok(readdirSync(dir).filter((f) => f.endsWith('.q')).length === 1, 'only the segment being written is left');
  q.close();
});

t.test('a restart sends what was not acknowledged, with its sequence numbers, before the new run', async (t) => {
  const dir = tempDir();
  const q1 = open(dir);
  for (let i = 1; i <= 300; i++) q1.append(line(i), i);
  q1.ack(q1.peek(120, 1 << 20));
  q1.close();
  t.equal(lastQueued(dir, 'run-a'), 300, 'the state reader finds the last sequence run-a wrote');
  t.equal(lastQueued(dir, 'run-other'), 0, 'and nothing for another run');
  const q2 = open(dir, { run: 'run-b' });
  t.equal(q2.queued, 180, 'the unacknowledged records of the earlier run');
  q2.append(line(1), 1);
  const got = drain(q2);
  t.same(
    got.map((r) => r.seq),
    [...Array.from({ length: 180 }, (_, i) => i + 121), 1],
    'old 121..300 first, then the new run',
  );
  t.ok(got.slice(0, 180).every((r) => r.seg < q2.thisRunFrom) && got[180].seg >= q2.thisRunFrom, 'the runs are told apart');
  q2.close();
});

t.test('the byte bound: append refuses past capture_queue_max_bytes and takes again once acknowledged', async (t) => {
  const dir = tempDir();
  const q = open(dir, { maxBytes: 64 * 1024 });
  let taken = 0;
  while (q.append(line(taken + 1), taken + 1)) taken++;
  t.ok(taken > 500 && q.bytes <= 64 * 1024, `${taken} records, ${q.bytes} bytes: within the bound`);
  t.notOk(q.append(line(0), 0), 'full');
  drain(q);
  t.ok(q.append(line(taken + 1), taken + 1), 'room again once acknowledged segments are deleted');
  q.close();
});

t.test('crash and hostile leftovers: half-written record cut, bad checkpoint means resend all, damaged segment fails loudly', async (t) => {
  const dir = tempDir();
  const q1 = open(dir);
  for (let i = 1; i <= 10; i++) q1.append(line(i), i);
  q1.close();
  const seg = readdirSync(dir).find((f) => f.endsWith('.q'))!;
  appendFileSync(join(dir, seg), '11\t{"event":{"seq');
  writeFileSync(join(dir, 'checkpoint'), 'not a checkpoint at all \u0000\n'.repeat(1000));
  const q2 = open(dir, { run: 'run-b' });
  t.same(
    drain(q2).map((r) => r.seq),
    Array.from({ length: 10 }, (_, i) => i + 1),
    'ten whole records; the half-written one cut; all sent again',
  );
  q2.close();

  const dir3 = tempDir();
  writeFileSync(join(dir3, '1000000000000000.q'), 'no tab on this line\n');
  const q3 = open(dir3, { run: 'run-c' });
  t.throws(
    () => q3.peek(10, 1 << 20),
    /capture queue segment .* is damaged at byte 0/,
    'a damaged segment is named, not skipped in silence',
  );
  q3.close();
});

t.test('capture_queue disk without capture_spool_dir: the broker refuses to start, naming both keys', async (t) => {
  await t.rejects(
    startTestBroker(t, 'listener 0 127.0.0.1\nallow_anonymous true\ncapture_sink file /dev/null\ncapture_queue disk\n'),
    /capture_queue: disk needs capture_spool_dir/,
  );
});

t.test('bad values of the new keys are config errors naming the key', async (t) => {
  const dir = tempDir();
  const cases: [string, RegExp][] = [
    ['capture_queue tape', /capture_queue: expected one of memory\|disk, got "tape"/],
    ['capture_queue_sync_interval 2h', /capture_queue_sync_interval: expected a duration between 0 and 1h/],
    ['capture_queue_sync_interval -1', /capture_queue_sync_interval: expected a duration/],
    ['capture_queue_max_bytes 1k', /capture_queue_max_bytes: expected at least 64k/],
    ['capture_sink beats http://127.0.0.1:5044', /capture_sink: expected a tcp or tls URL, got "http:"/],
    ['capture_sink beats', /capture_sink/],
  ];
  for (const [line, error] of cases) {
    const file = join(dir, 'bad.conf');
    writeFileSync(file, `listener 0 127.0.0.1\n${line}\n`);
    t.throws(() => loadConfig(file), error, line);
  }
  const file = join(dir, 'good.conf');
  writeFileSync(
    file,
    `capture_sink beats tls://logstash.example:5044\ncapture_spool_dir ${dir}\ncapture_queue disk\ncapture_queue_sync_interval 250ms\ncapture_queue_max_bytes 64M\n`,
  );
  t.match(loadConfig(file).capture, { queue: 'disk', queueSyncMs: 250, queueMaxBytes: 64 * 1024 ** 2, sinks: [{ kind: 'beats' }] });
});

t.test('a runner whose disk queue is damaged stops with the reason in the log, delivering nothing', async (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, '1000000000000000.q'), '1\t{"a":1}\nthis line has no tab\n');
  const lines: string[] = [];
  const runLog = pino({ level: 'info' }, { write: (l: string) => lines.push(l) });
  const q = new DiskQueue({ dir, run: 'run-d', maxBytes: 1 << 20, syncMs: 0, cacheMax: 10, log: runLog });
  const written: string[][] = [];
  const r = new SinkRunner(
    { name: 'damaged', write: async (l) => void written.push(l), close: async () => {} },
    {
      queueMax: 10,
      disk: q,
      log: runLog,
      backoff: { baseMs: 10, maxMs: 10 },
      onDrops: () => {},
      count: { delivered: () => {}, dropped: () => {}, failure: () => {} },
    },
  );
  r.offer('{"b":2}', 1);
  await until(() => lines.some((l) => l.includes('its disk queue cannot be read')), 5000, 'the error');
  t.match(lines.join(''), /capture queue segment .*1000000000000000\.q is damaged at byte 10/, 'the file and the byte');
  t.same(written, [], 'nothing delivered past the damage');
  await r.stop(100);
});
