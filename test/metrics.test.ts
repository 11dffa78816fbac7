// Classification metrics: exact AUC equals a brute-force pair count (ties 1/2) on random data with
// many ties; perfect, reversed and one-class cases; logloss equals the direct formula;
// loglossFromLogits stays finite and right at logits of +-1000.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exactAuc, logloss, loglossFromLogits, sigmoid } from '../src/metrics/classification.ts';
import { mulberry32 } from '../src/util/hash.ts';

function bruteAuc(s: ArrayLike<number>, y: ArrayLike<number>): number {
  let u = 0, pairs = 0;
  for (let i = 0; i < s.length; i++) {
    if (y[i] !== 1) continue;
    for (let j = 0; j < s.length; j++) {
      if (y[j] !== 0) continue;
      pairs++;
      u += s[i]! > s[j]! ? 1 : s[i] === s[j] ? 0.5 : 0;
    }
  }
  return u / pairs;
}

test('exactAuc equals the O(n^2) pair count, with many ties', () => {
  const rand = mulberry32(42);
  for (const [n, levels] of [[1, 3], [2, 2], [50, 3], [300, 10], [1500, 40], [1000, 1e9]] as const) {
    const s = new Float32Array(n), y = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      y[i] = rand() < 0.3 ? 1 : 0;
      s[i] = Math.floor(rand() * levels) + (y[i] ? 0.3 * levels * rand() : 0) - levels / 2; // signal, ties, negatives
    }
    const want = bruteAuc(s, y), got = exactAuc(s, y);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(got), `n=${n}: one class -> NaN`);
    else assert.ok(Math.abs(got - want) < 1e-12, `n=${n} levels=${levels}: ${got} vs ${want}`);
  }
});

test('exactAuc: perfect, reversed, all tied, one class, NaN score, plain arrays', () => {
  const y = [0, 0, 1, 0, 1, 1];
  const s = [0.1, 0.2, 0.9, 0.3, 0.8, 0.7];
  assert.is(exactAuc(s, y), 1);
  assert.is(exactAuc(s.map((v) => -v), y), 0);
  assert.is(exactAuc(s.map(() => 5), y), 0.5);
  assert.ok(Number.isNaN(exactAuc([1, 2, 3], [1, 1, 1])));
  assert.ok(Number.isNaN(exactAuc([1, 2, 3], [0, 0, 0])));
  assert.ok(Number.isNaN(exactAuc([], [])));
  assert.ok(Number.isNaN(exactAuc([0.1, NaN], [0, 1])));
  assert.is(exactAuc(new Float64Array([-0, 0]), new Float32Array([0, 1])), 0.5); // -0 and 0 tie
  assert.throws(() => exactAuc([1, 2], [0]), /2 predictions but 1 labels/);
  assert.throws(() => exactAuc([1, 2], [0, 2]), /label 1 is 2/);
});

test('exactAuc handles a million samples quickly', () => {
  const rand = mulberry32(7), n = 1_000_000;
  const s = new Float32Array(n), y = new Uint8Array(n);
  for (let i = 0; i < n; i++) { y[i] = rand() < 0.25 ? 1 : 0; s[i] = rand() + 0.5 * y[i]!; }
  const auc = exactAuc(s, y);
  // P(U1 + 0.5 > U2) for uniforms: 1 - 0.5 * 0.5^2 = 0.875.
  assert.ok(Math.abs(auc - 0.875) < 0.003, String(auc));
});

test('logloss equals the direct formula, clamps 0 and 1', () => {
  const rand = mulberry32(3);
  const n = 1000, p = new Float64Array(n), y = new Float64Array(n);
  let want = 0;
  for (let i = 0; i < n; i++) {
    p[i] = 0.01 + 0.98 * rand();
    y[i] = rand() < p[i]! ? 1 : 0;
    want += -(y[i]! * Math.log(p[i]!) + (1 - y[i]!) * Math.log(1 - p[i]!));
  }
  assert.ok(Math.abs(logloss(p, y) - want / n) < 1e-12);
  assert.ok(Math.abs(logloss([0, 1], [1, 0]) + Math.log(1e-7)) < 1e-9, 'clamped at eps');
  assert.ok(Math.abs(logloss([0, 1], [1, 0], 1e-3) + Math.log(1e-3)) < 1e-9);
  assert.ok(logloss([0, 1], [0, 1]) < 1e-6);
  assert.ok(Number.isNaN(logloss([], [])));
});

test('loglossFromLogits: matches logloss(sigmoid) and stays exact at +-1000', () => {
  const rand = mulberry32(9);
  const n = 500, z = new Float64Array(n), y = new Float64Array(n);
  for (let i = 0; i < n; i++) { z[i] = (rand() - 0.5) * 10; y[i] = rand() < 0.4 ? 1 : 0; }
  assert.ok(Math.abs(loglossFromLogits(z, y) - logloss(Array.from(z, sigmoid), y, 0)) < 1e-12);
  assert.is(loglossFromLogits([1000, -1000], [1, 0]), 0);
  assert.ok(Math.abs(loglossFromLogits([1000], [0]) - 1000) < 1e-9);
  assert.ok(Math.abs(loglossFromLogits([-1000], [1]) - 1000) < 1e-9);
  assert.ok(Math.abs(loglossFromLogits([0], [1]) - Math.LN2) < 1e-15);
  assert.ok(Math.abs(loglossFromLogits([40], [1]) - Math.exp(-40)) < 1e-30, 'tiny losses keep their digits');
  assert.ok(Math.abs(sigmoid(-1000)) === 0 && sigmoid(1000) === 1 && sigmoid(0) === 0.5);
});

test.run();
