import t, { type Test } from 'tap';
import {
  appendFileSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { Tailer, type TailHandlers } from '../../bridges/shared/tailer.js';
import { FileStore } from '../../bridges/shared/store.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/mqtt.js';

const log = pino({ level: 'silent' });

interface Run {
  lines: { file: string; line: string; offset: number }[];
  oversized: number[];
  resets: string[];
  events: string[];
  tailer: Tailer;
  store: FileStore;
  done: Promise<void>;
}

/** A Tailer on dir/*.log with a file store in stateDir, recording what it hands over; stopped in teardown. */
function tail(
  t: Test,
  dir: string,
  stateDir: string,
  opts: { start?: 'beginning' | 'end'; maxLineBytes?: number; forgetAfterMs?: number; handler?: TailHandlers['lines'] } = {},
): Run {
  const store = new FileStore(join(stateDir, 'state.json'), log);
  const run: Omit<Run, 'tailer' | 'done'> = { lines: [], oversized: [], resets: [], events: [], store };
  const tailer = new Tailer(
    {
      sources: [{ dir, match: (n) => n.endsWith('.log') }],
      start: opts.start ?? 'beginning',
      maxLineBytes: opts.maxLineBytes ?? 4096,
      store,
      log,
      pollMs: 50,
      forgetAfterMs: opts.forgetAfterMs,
    },
    {
      lines: async (file, lines, offsets) => {
        if (opts.handler) await opts.handler(file, lines, offsets);
        lines.forEach((line, i) => run.lines.push({ file: file.name, line, offset: offsets[i] }));
      },
      reset: (file) => run.resets.push(file.name),
      oversized: (_file, bytes) => run.oversized.push(bytes),
      event: (kind) => run.events.push(kind),
    },
  );
  const done = tailer.run();
  t.teardown(async () => {
    await tailer.stop();
    await store.close();
  });
  return { ...run, tailer, done };
}

const texts = (r: Run) => r.lines.map((l) => l.line);

t.test('partial lines are held until their newline; CRLF and empty lines', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'a.log');
  writeFileSync(file, '');
  const r = tail(t, dir, tempDir());
  appendFileSync(file, 'abc');
  await new Promise((res) => setTimeout(res, 150));
  t.same(texts(r), [], 'an unfinished line is not handed over');
  appendFileSync(file, 'def\r\n\nghi');
  await until(() => r.lines.length === 1);
  appendFileSync(file, '\n');
  await until(() => r.lines.length === 2);
  t.same(r.lines, [
    { file: 'a.log', line: 'abcdef', offset: 0 },
    { file: 'a.log', line: 'ghi', offset: 9 },
  ]);
});

t.test('a 10 MB line is skipped and counted without being held in memory', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'big.log');
  writeFileSync(file, 'before\n');
  const r = tail(t, dir, tempDir(), { maxLineBytes: 64 * 1024 });
  await until(() => r.lines.length === 1);
  const fd = openSync(file, 'a');
  const mb = Buffer.alloc(1024 * 1024, 'z');
  for (let i = 0; i < 10; i++) writeSync(fd, mb);
  writeSync(fd, '\nafter\n');
  writeSync(fd, Buffer.alloc(10 * 1024 * 1024, 0xff));
  writeSync(fd, '\nlast\n');
  closeSync(fd);
  await until(() => r.lines.length === 3, 10_000, 'the lines around the big ones');
  t.same(texts(r), ['before', 'after', 'last']);
  t.equal(r.oversized.length, 2, 'each oversized line counted once');
  t.ok(r.oversized.every((b) => b > 64 * 1024));
});

t.test('rotation: a renamed file is read to its end, its successor from the start, nothing twice', async (t) => {
  const dir = tempDir();
  const file = join(dir, 'conn.log');
  writeFileSync(file, 'a1\na2\n');
  const r = tail(t, dir, tempDir(), { forgetAfterMs: 300 });
  await until(() => r.lines.length === 2);
  // Zeek-style: the writer keeps its descriptor, the file is renamed within the directory, a new one appears
  const old = openSync(file, 'a');
  renameSync(file, join(dir, 'conn.2024-01-01-00-00-00.log'));
  writeSync(old, 'a3\n');
  closeSync(old);
  writeFileSync(file, 'b1\n');
  await until(() => r.lines.length === 4, 5000, 'a3 and b1');
  t.same(texts(r).sort(), ['a1', 'a2', 'a3', 'b1']);
  t.ok(r.events.includes('renamed'));
  t.equal(r.lines.find((l) => l.line === 'a3')!.file, 'conn.2024-01-01-00-00-00.log', 'the renamed file keeps its place (same inode)');

  // rotated out of the directory's pattern: drained, then forgotten (checkpoint deleted)
  const old2 = openSync(file, 'a');
  renameSync(file, join(dir, 'conn.log.old'));
  writeSync(old2, 'b2\n');
  closeSync(old2);
  writeFileSync(file, 'c1\n');
  await until(() => r.lines.length === 6, 5000, 'b2 and c1');
  t.same(texts(r).slice(4).sort(), ['b2', 'c1']);
  await until(() => r.events.includes('closed'));
  t.equal(r.tailer.openFiles, 2, 'the two files still in the directory are followed');
  let keys = (await r.store.keys('tail:')).length;
  for (let i = 0; i < 100 && keys !== 2; i++) {
    await new Promise((res) => setTimeout(res, 50));
    keys = (await r.store.keys('tail:')).length;
  }
  t.equal(keys, 2, 'the checkpoint of a file gone from the directory is dropped after forgetAfterMs');
});

t.test('a file that leaves the directory and comes back under another name is resumed, not read again', async (t) => {
  const dir = tempDir();
  const away = tempDir();
  writeFileSync(join(dir, 'http.log'), 'h1\nh2\n');
  const r = tail(t, dir, tempDir());
  await until(() => r.lines.length === 2);
  renameSync(join(dir, 'http.log'), join(away, 'http.log'));
  await until(() => r.events.includes('closed'));
  appendFileSync(join(away, 'http.log'), 'h3\n');
  renameSync(join(away, 'http.log'), join(dir, 'http.00:00:00-01:00:00.log'));
  await until(() => r.lines.length === 3);
  await new Promise((res) => setTimeout(res, 150));
  t.same(texts(r), ['h1', 'h2', 'h3']);
});

t.test('start end: existing content (and the rest of a partial last line) is skipped; later files are read from the start', async (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, 'old.log'), 'x1\nx2\npart');
  const r = tail(t, dir, tempDir(), { start: 'end' });
  await until(() => r.events.includes('opened'));
  appendFileSync(join(dir, 'old.log'), 'ial\nx3\n');
  writeFileSync(join(dir, 'new.log'), 'n1\nn2\n');
  await until(() => r.lines.length === 3);
  t.same(texts(r).sort(), ['n1', 'n2', 'x3']);
});

t.test('truncation starts the file over; a checkpoint resumes exactly where the last run stopped', async (t) => {
  const dir = tempDir();
  const state = tempDir();
  const file = join(dir, 'dns.log');
  writeFileSync(file, 'l1\nl2\n');
  const tt = t.test('first run', async (t) => {
    const r = tail(t, dir, state);
    await until(() => r.lines.length === 2);
    truncateSync(file, 0);
    await until(() => r.resets.length === 1, 5000, 'the truncation');
    appendFileSync(file, 'm1\n');
    await until(() => r.lines.length === 3);
    appendFileSync(file, 'm2\nhalf');
    await until(() => r.lines.length === 4);
    t.same(texts(r), ['l1', 'l2', 'm1', 'm2']);
  });
  await tt;
  appendFileSync(file, '-line\nm3\n');
  const second = t.test('second run', async (t) => {
    const r = tail(t, dir, state);
    await until(() => r.lines.length === 2);
    await new Promise((res) => setTimeout(res, 150));
    t.same(texts(r), ['half-line', 'm3'], 'resumed after m2: the partial line once, whole');
  });
  await second;
  // same inode, different content while stopped: the fingerprint tells it is not the file of the checkpoint
  writeFileSync(file, 'z1\nz2\nz3\nz4\nz5\nz6\nz7\nz8\n');
  const third = t.test('third run', async (t) => {
    const r = tail(t, dir, state);
    await until(() => r.lines.length === 8);
    t.same(texts(r)[0], 'z1', 'rewritten file read from the start');
  });
  await third;
});

t.test('a directory that is missing, appears, is deleted and comes back costs nothing', async (t) => {
  const base = tempDir();
  const dir = join(base, 'current');
  const r = tail(t, dir, tempDir());
  await until(() => r.events.includes('dir-missing'));
  mkdirSync(dir);
  writeFileSync(join(dir, 'x.log'), 'one\n');
  await until(() => r.lines.length === 1);
  rmSync(dir, { recursive: true });
  await until(() => r.events.includes('closed'), 5000, 'the deleted file dropped');
  await new Promise((res) => setTimeout(res, 150));
  mkdirSync(dir);
  writeFileSync(join(dir, 'x.log'), 'two\n');
  await until(() => r.lines.length === 2);
  t.same(texts(r), ['one', 'two']);
  t.equal(r.events.filter((e) => e === 'dir-missing').length, 2, 'each disappearance warned once');
});

t.test('a failing handler stops the tailer with the checkpoint before the failed batch', async (t) => {
  const dir = tempDir();
  const state = tempDir();
  const file = join(dir, 'f.log');
  writeFileSync(file, 'ok1\n');
  let fail = false;
  const r = tail(t, dir, state, {
    handler: async () => {
      if (fail) throw new Error('downstream refused');
    },
  });
  await until(() => r.lines.length === 1);
  fail = true;
  appendFileSync(file, 'lost?\n');
  await t.rejects(r.done, /downstream refused/);
  await r.store.close();
  const again = tail(t, dir, state);
  await until(() => again.lines.length === 1);
  t.same(texts(again), ['lost?'], 'the failed line comes again, the one before it does not');
  unlinkSync(file);
});
