import t from 'tap';
import { DistinctWindow, RateBaseline, WindowLog, type BaselineParams } from '../../detect/windows.js';
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
