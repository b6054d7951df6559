import t from 'tap';
import { LRUCache } from 'lru-cache';
import { DistinctWindow, RateBaseline, WindowLog, trackedMap, type BaselineParams } from '../../detect/windows.js';
import { T0 } from './events.js';

const P: BaselineParams = { bucket: 10_000, alpha: 0.02, warmup: 30, clip: 3 };

t.test('RateBaseline: the sliding count follows the exact count within one sub-bucket', async (t) => {
  const r = new RateBaseline();
  const times: number[] = [];
  let worst = 0;
  for (let time = T0 + 3_333; time < T0 + 120_000; time += 137) {
    times.push(time);
    const exact = times.filter((x) => x > time - P.bucket).length;
    worst = Math.max(worst, Math.abs(r.add(time, -1, P) - exact));
  }
  t.ok(worst <= 2_000 / 137 + 1, `off by at most one 2 s sub-bucket of events (worst ${worst.toFixed(1)})`);
  t.ok(Math.abs(r.mean - 10_000 / 137) < 3, `the learned mean is the bucket count (${r.mean.toFixed(1)})`);
});

t.test('RateBaseline: a flood is learned clipped, idle time decays the mean', async (t) => {
  const r = new RateBaseline();
  let time = T0;
  for (let i = 0; i < 400; i++) r.add((time += 5_000), -1, P); // 2 per bucket
  const before = r.mean;
  for (let i = 0; i < 3000; i++) r.add((time += 10), -1, P); // 1000 per bucket for 30 s
  r.add((time += 10_000), -1, P);
  t.ok(r.mean < before + 1, `the flood barely moved the mean (${before.toFixed(2)} → ${r.mean.toFixed(2)})`);
  r.add((time += 24 * 3600_000), -1, P);
  t.ok(r.mean < 0.01, 'a day without publishes: the mean decays towards 0');
});

t.test('WindowLog and DistinctWindow keep at most the threshold', async (t) => {
  const w = new WindowLog();
  for (let i = 0; i < 1000; i++) w.add(T0 + i, i, 60_000, 10);
  t.equal(w.sequences().length, 10);
  t.same(w.sequences(), [990, 991, 992, 993, 994, 995, 996, 997, 998, 999]);
  const d = new DistinctWindow();
  let n = 0;
  for (let i = 0; i < 100; i++) n = d.add(`u${i}`, T0 + i * 10_000, i, 60_000, 5);
  t.ok(n <= 7, `expired items are swept once the count reaches the threshold (${n})`);
});

t.test('trackedMap remembers the last key it gave, yet answers and orders as the LRU it is', async (t) => {
  const tracked = trackedMap<number>(5);
  const plain = new LRUCache<string, number>({ maxSize: 5, sizeCalculation: () => 1 });
  // runs of one key, as a flood brings them, mixed with every operation that moves or drops keys
  let x = 7;
  const next = (n: number) => (x = (x * 1103515245 + 12345) % 2 ** 31) % n;
  let differences = 0;
  for (let i = 0; i < 20_000; i++) {
    const key = `k${next(9)}`;
    const op = next(10);
    const [a, b] =
      op < 6
        ? [tracked.get(key), plain.get(key)]
        : op < 8
          ? [tracked.set(key, i).size, plain.set(key, i).size]
          : op < 9
            ? [tracked.delete(key), plain.delete(key)]
            : [tracked.has(key), plain.has(key)];
    if (a !== b || [...tracked.keys()].join() !== [...plain.keys()].join()) differences++;
    if (i % 5_000 === 4_999) {
      tracked.clear();
      plain.clear();
    }
  }
  t.equal(differences, 0, 'the same answers and the same order after each of 20,000 operations');
  tracked.set('a', 1);
  t.equal(tracked.get('a'), 1);
  tracked.set('a', 2);
  t.equal(tracked.get('a'), 2, 'a key set again is got with its new value');
  tracked.delete('a');
  t.equal(tracked.get('a'), undefined, 'a deleted key is not remembered');
});

t.test('RateBaseline: events within one millisecond add one each, also with sub-buckets of a fractional length', async (t) => {
  const p: BaselineParams = { ...P, bucket: 1_001 };
  const r = new RateBaseline();
  let wrong = 0;
  for (let time = T0; time < T0 + 5_000; time += 37) {
    const first = r.add(time, -1, p);
    for (let k = 1; k < 5; k++) if (r.add(time, -1, p) !== first + k) wrong++;
  }
  t.equal(wrong, 0, 'the sliding count goes up by exactly one per event of the same millisecond');
});

t.test('DistinctWindow: the same item again and again counts once, and again after it left the window', async (t) => {
  const w = new DistinctWindow();
  t.equal(w.add('a', T0, 1, 1_000, 3), 1);
  t.equal(w.add('a', T0 + 1, 2, 1_000, 3), 1);
  t.equal(w.add('b', T0 + 2, 3, 1_000, 3), 2);
  t.equal(w.add('c', T0 + 3, 4, 1_000, 3), 3);
  // a window of no length sweeps every item, the one just added included
  t.equal(w.add('c', T0 + 5_000, 5, 0, 1), 0);
  t.equal(w.add('c', T0 + 5_001, 6, 1_000, 3), 1, 'the swept item is counted afresh');
  t.same(w.sequences(), [6]);
});
