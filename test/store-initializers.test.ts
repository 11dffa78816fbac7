// Row initializers: a row depends on (table seed, key) only, whatever the insertion order or the
// store that creates it; different keys and seeds differ; uniform stays in bounds and normal has
// the right mean and variance; pinned values catch an accidental change of the generator.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { initRow, makeRowInitializer, checkInitSpec, seedWords, type InitKind } from '../src/server/initializers.ts';
import { TableStore } from '../src/server/table-store.ts';
import { rng, testSeed } from './helpers/reference.ts';

const seed = testSeed();

function store(init: InitKind, scale: number, tableSeed: bigint, dim = 16) {
  return new TableStore({ id: 1, name: 'emb', dim, init, initScale: scale, seed: tableSeed, optimizer: 'sgd', hyper: {} });
}

test(`same (seed, key) gives the same row in any order and any store (TEST_SEED=${seed})`, () => {
  const r = rng(seed);
  const keys = BigUint64Array.from({ length: 2000 }, (_, i) => (BigInt(Math.floor(r() * 2 ** 32)) << 16n) ^ BigInt(i));
  for (const init of ['uniform', 'normal'] as const) {
    const a = store(init, 0.5, 99n), b = store(init, 0.5, 99n);
    const rowsA = a.pull(keys);
    // b sees the keys reversed, in batches of varying size, with unrelated keys created in between.
    const reversed = keys.slice().reverse();
    const rowsB = new Float32Array(rowsA.length);
    for (let at = 0, step = 1; at < reversed.length; at += step, step = (step % 97) + 1) {
      b.pull(BigUint64Array.of(BigInt(at) + (1n << 40n)));
      const part = reversed.subarray(at, at + step);
      const got = b.pull(part);
      for (let i = 0; i < part.length; i++) rowsB.set(got.subarray(i * 16, i * 16 + 16), (keys.length - 1 - (at + i)) * 16);
    }
    assert.equal(Array.from(rowsB), Array.from(rowsA), `${init}: rows equal`);
    // initRow (the plain function) agrees with the store.
    const one = new Float32Array(16);
    const w = new Uint32Array(keys.buffer);
    initRow(one, 0, 16, { init, scale: 0.5, seed: 99n }, w[2 * 7]!, w[2 * 7 + 1]!);
    assert.equal(Array.from(one), Array.from(rowsA.subarray(7 * 16, 8 * 16)));
  }
});

test('different keys, seeds and high words give different rows; columns do not depend on dim', () => {
  const f = makeRowInitializer({ init: 'uniform', scale: 1, seed: 5n });
  const g = makeRowInitializer({ init: 'uniform', scale: 1, seed: 6n });
  const row = (fn: typeof f, lo: number, hi: number, dim = 8) => { const o = new Float32Array(dim); fn(o, 0, dim, lo, hi); return Array.from(o); };
  const seen = new Set<string>();
  for (let k = 0; k < 1000; k++) seen.add(row(f, k, 0).join());
  for (let k = 0; k < 1000; k++) seen.add(row(f, 0, k + 1).join()); // same low word, other high word
  for (let k = 0; k < 1000; k++) seen.add(row(g, k, 0).join());
  assert.is(seen.size, 3000, 'every (seed, key) row distinct');
  for (const init of ['uniform', 'normal'] as const) {
    const h = makeRowInitializer({ init, scale: 1, seed: 5n });
    assert.equal(row(h, 77, 3, 5), row(h, 77, 3, 16).slice(0, 5), `${init}: column c is the same for any width`);
  }
  // Seeds are taken mod 2^64 and numbers equal their bigint.
  assert.equal(seedWords(2n ** 64n + 3n), [3, 0]);
  assert.equal(row(makeRowInitializer({ init: 'uniform', scale: 1, seed: 12 }), 1, 0), row(makeRowInitializer({ init: 'uniform', scale: 1, seed: 12n }), 1, 0));
});

test('uniform is within [-scale, scale] with the moments of U(-s, s)', () => {
  const scale = 0.1, dim = 32, rows = 8000;
  const f = makeRowInitializer({ init: 'uniform', scale, seed: 1234n });
  const out = new Float32Array(dim * rows);
  for (let k = 0; k < rows; k++) f(out, k * dim, dim, k, 0);
  let sum = 0, sq = 0, min = Infinity, max = -Infinity;
  for (const v of out) { sum += v; sq += v * v; min = Math.min(min, v); max = Math.max(max, v); }
  const n = out.length, mean = sum / n, variance = sq / n - mean * mean;
  assert.ok(min >= -Math.fround(scale) && max <= Math.fround(scale), `range [${min}, ${max}]`);
  assert.ok(min < -0.099 && max > 0.099, 'reaches both ends');
  const want = scale * scale / 3;
  // n = 256k: the mean's sd is sqrt(want / n) ~ 1.1e-4, the variance's relative sd ~ 0.2%.
  assert.ok(Math.abs(mean) < 6e-4, `mean ${mean}`);
  assert.ok(Math.abs(variance / want - 1) < 0.02, `variance ${variance}, want ${want}`);
});

test('normal has mean 0 and variance scale^2, and a Gaussian tail', () => {
  const scale = 0.3, dim = 33, rows = 8000; // odd width: the last column uses the cosine only
  const f = makeRowInitializer({ init: 'normal', scale, seed: 2n ** 63n + 1n });
  const out = new Float32Array(dim * rows);
  for (let k = 0; k < rows; k++) f(out, k * dim, dim, k * 7919, k & 0xff);
  let sum = 0, sq = 0, beyond2 = 0;
  for (const v of out) { sum += v; sq += v * v; if (Math.abs(v) > 2 * scale) beyond2++; }
  const n = out.length, mean = sum / n, variance = sq / n - mean * mean;
  assert.ok(Math.abs(mean) < 5 * scale / Math.sqrt(n), `mean ${mean}`);
  assert.ok(Math.abs(variance / (scale * scale) - 1) < 0.02, `variance ${variance}, want ${scale * scale}`);
  const frac = beyond2 / n; // P(|Z| > 2) = 0.0455
  assert.ok(Math.abs(frac - 0.0455) < 0.003, `P(|x| > 2 sd) = ${frac}`);
  assert.ok(out.every(Number.isFinite));
});

test('zeros and constant; pinned values of the generator', () => {
  const o = new Float32Array(6).fill(NaN);
  initRow(o, 1, 4, { init: 'constant', scale: 0.25, seed: 1n }, 3, 0);
  assert.equal(Array.from(o).map(String), ['NaN', '0.25', '0.25', '0.25', '0.25', 'NaN'], 'writes exactly dim values at the offset');
  initRow(o, 1, 4, { init: 'zeros', scale: 9, seed: 1n }, 3, 0);
  assert.equal(Array.from(o.subarray(1, 5)), [0, 0, 0, 0]);
  // Changing the generator changes every new row of every table: if that is intended, update these.
  const u = new Float32Array(4), z = new Float32Array(4);
  initRow(u, 0, 4, { init: 'uniform', scale: 1, seed: 42n }, 12345, 0);
  assert.equal(Array.from(u), [-0.1896411031484604, 0.4087992012500763, 0.44846111536026, -0.12474358826875687]);
  initRow(u, 0, 4, { init: 'uniform', scale: 1, seed: 2n ** 63n + 5n }, 7, 0xffff);
  assert.equal(Array.from(u), [-0.2436109185218811, -0.15195511281490326, 0.057429973036050797, 0.7280083298683167]);
  initRow(z, 0, 4, { init: 'normal', scale: 1, seed: 42n }, 12345, 0);
  const pinned = [-0.3798843324184418, -1.2893946170806885, -0.7423998713493347, 0.30681169033050537];
  z.forEach((v, i) => assert.ok(Math.abs(v - pinned[i]!) < 1e-6, `normal column ${i}: ${v} vs ${pinned[i]}`));
});

test('bad specs are refused with the reason', () => {
  assert.match(checkInitSpec({ init: 'gaussian' as InitKind, scale: 1, seed: 1n })!, /unknown initializer 'gaussian'/);
  assert.match(checkInitSpec({ init: 'uniform', scale: NaN, seed: 1n })!, /not a finite number/);
  assert.match(checkInitSpec({ init: 'normal', scale: -1, seed: 1n })!, /standard deviation/);
  assert.match(checkInitSpec({ init: 'uniform', scale: 1, seed: -3 })!, /seed/);
  assert.match(checkInitSpec({ init: 'uniform', scale: 1, seed: 1.5 })!, /seed/);
  assert.is(checkInitSpec({ init: 'uniform', scale: 1, seed: 2n ** 70n }), null);
  assert.throws(() => makeRowInitializer({ init: 'uniform', scale: Infinity, seed: 1n }), /finite/);
});

test.run();
