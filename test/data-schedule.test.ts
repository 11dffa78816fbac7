// The schedule as arithmetic on a plan (no files): for random line counts, held-out splits, batch
// sizes and worker counts, fresh shares partition the data, a pool's pieces partition the pool with
// training counts within one of each other, and a run stopped after k steps of an epoch with W
// workers and resumed onto W' (or another batch size) trains every sample of the epoch at most once, and exactly the ones
// an independent model of the schedule (plain arrays) says: the first k batches of each old share,
// then the first batches of each piece of the rest. Whole plain gzip files stay with one worker.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freshShares, poolShares, sliceByTrainRank, onto, sharesOf, stepsPerEpoch, trainIndexAt, trainCount, intervalsTrainCount, EpochSequence, type Interval } from '../src/data/schedule.ts';
import type { DataPlan, FilePlan } from '../src/data/data-plan.ts';
import { rng, testSeed } from './helpers/reference.ts';

const plainPlan = (N: number): DataPlan => ({ files: [{ path: 'a', kind: 'plain', bytes: 0, firstIndex: 0, lines: N, anchors: [] }], lines: N });
const expand = (iv: Interval[]) => iv.flatMap(([lo, hi]) => Array.from({ length: hi - lo }, (_, i) => lo + i));
const isTrain = (i: number, every: number) => i % every !== every - 1;

test('training-line arithmetic matches counting', () => {
  const r = rng(testSeed());
  for (let q = 0; q < 300; q++) {
    const every = 2 + Math.floor(r() * 9), lo = Math.floor(r() * 100), hi = lo + Math.floor(r() * 100), j = Math.floor(r() * 50);
    const list = Array.from({ length: 400 }, (_, i) => lo + i).filter((i) => isTrain(i, every));
    assert.is(trainCount(lo, hi, every), list.filter((i) => i < hi).length);
    assert.is(trainIndexAt(lo, j, every), list[j]);
  }
});

test('a resume onto another worker count trains each sample of the epoch once, the ones the model says', () => {
  const seed = testSeed(), r = rng(seed);
  for (let q = 0; q < 200; q++) {
    const N = Math.floor(r() * 3000), every = 2 + Math.floor(r() * 10), b = 1 + Math.floor(r() * 20);
    const W = 1 + Math.floor(r() * 6), W2 = 1 + Math.floor(r() * 6), b2 = r() < 0.3 ? 1 + Math.floor(r() * 20) : b;
    const plan = plainPlan(N);
    const shares = freshShares(plan, W);
    assert.equal(expand(shares.flat()), Array.from({ length: N }, (_, i) => i), `fresh shares partition the data (seed ${seed})`);
    const per = stepsPerEpoch(shares, b, every);
    if (per === 0) continue;
    const k = Math.floor(r() * per);
    // The model: each share's training lines as an array; the first k*b of each were trained.
    const lists = shares.map((s) => expand(s).filter((i) => isTrain(i, every)));
    const before = lists.flatMap((l) => l.slice(0, k * b));
    const rest = lists.flatMap((l) => l.slice(k * b));
    const c = onto(plan, { epoch: 3, epochStep: k, batch: b, layout: { workers: W }, lines: N }, W2, b2, every);
    let after: number[];
    const same = W2 === W && b2 === b;
    if (same) {
      assert.equal(c.layout, { workers: W });
      after = lists.flatMap((l) => l.slice(k * b, per * b));
    } else {
      const pieces = sharesOf(plan, c.layout, every).map((s) => expand(s).filter((i) => isTrain(i, every)));
      const sizes = pieces.map((p) => p.length);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `pieces of ${sizes} (seed ${seed})`);
      assert.equal(pieces.flat(), rest, `the pieces are the untrained rest, in order (seed ${seed})`);
      const per2 = stepsPerEpoch(sharesOf(plan, c.layout, every), b2, every);
      after = pieces.flatMap((p) => p.slice(0, per2 * b2));
      assert.ok(rest.length - after.length < W2 * (b2 + 1), 'what is left untrained is less than a batch per worker');
    }
    const all = [...before, ...after];
    assert.is(new Set(all).size, all.length, `no sample twice (seed ${seed}, N ${N}, W ${W} -> ${W2}, b ${b} -> ${b2}, k ${k})`);
    // The schedule's own reading of the shares gives the same samples.
    const seq = new EpochSequence(plan, c, 100 + (same ? k : 0), W2, b2, every);
    const got = sharesOf(plan, c.layout, every).flatMap((s) => expand(sliceByTrainRank(s, c.epochStep * b2, seq.firstPer * b2, every)).filter((i) => isTrain(i, every)));
    assert.equal(got.sort((x, y) => x - y), [...after].sort((x, y) => x - y), `the schedule trains the model's samples (seed ${seed})`);
    assert.is(seq.at(100 + seq.firstPer - seq.first.epochStep + (same ? k : 0)).epoch, 4, 'the next epoch starts where this one ends');
  }
});

test('pools cut into equal training counts; intervalsTrainCount sums', () => {
  const pool: Interval[] = [[5, 40], [41, 41], [60, 200]];
  const pieces = poolShares(pool, 4, 10);
  assert.equal(pieces.map((p) => intervalsTrainCount(p, 10)).reduce((a, x) => a + x, 0), intervalsTrainCount(pool, 10));
  assert.equal(expand(pieces.flat()).filter((i) => isTrain(i, 10)), expand(pool).filter((i) => isTrain(i, 10)));
});

test('with at least as many files as workers, plain gzip files go whole to one worker', () => {
  const files: FilePlan[] = [];
  let at = 0;
  for (const n of [100, 90, 110, 100, 95]) { files.push({ path: `day_${files.length}.gz`, kind: 'gzip', bytes: 0, firstIndex: at, lines: n, anchors: [] }); at += n; }
  const plan: DataPlan = { files, lines: at };
  for (const W of [1, 2, 3, 5]) {
    const cuts = freshShares(plan, W).map((s) => s[0]![0]);
    for (const t of cuts) assert.ok(files.some((f) => f.firstIndex === t), `${W} workers: cut at ${t} is a file start`);
  }
  // Fewer files than workers: cut inside the files (each worker inflates up to its share).
  assert.ok(freshShares(plan, 7).some((s) => !files.some((f) => f.firstIndex === s[0]![0])));
});

test.run();
