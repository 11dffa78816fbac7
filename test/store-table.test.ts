// TableStore: pull creates rows deterministically, apply runs the update per row, export is
// sorted and import round-trips (also by slot name, with a keep filter, onto fewer slots), and
// checkPush / checkTableConfig refuse bad input with the reason. (BSP sums: store-bsp-accumulator.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TableStore, checkPush, checkTableConfig, type TableConfig } from '../src/server/table-store.ts';
import { rng, testSeed } from './helpers/reference.ts';
import { makeRowInitializer } from '../src/server/initializers.ts';
import { keyWords } from '../src/keys/keys.ts';

const seed = testSeed();
const cfg = (over: Partial<TableConfig> = {}): TableConfig => ({
  id: 1, name: 'emb', dim: 4, init: 'uniform', initScale: 0.5, seed: 11n, optimizer: 'sgd', hyper: { lr: 0.5 }, ...over,
});
const K = (...ks: (number | bigint)[]) => BigUint64Array.from(ks, (k) => BigInt(k));

test('pull creates missing rows once, in the order asked, into out', () => {
  const s = new TableStore(cfg());
  const a = s.pull(K(5, 2 ** 47, 5, 0));
  assert.is(s.rows, 3, 'a repeated key is one row');
  assert.equal(Array.from(a.subarray(0, 4)), Array.from(a.subarray(8, 12)));
  const out = new Float32Array(8).fill(NaN);
  assert.is(s.pull(K(0, 5), out), out);
  assert.equal(Array.from(out), [...a.subarray(12, 16), ...a.subarray(0, 4)]);
  assert.is(s.rows, 3);
  assert.throws(() => s.pull(K(1), new Float32Array(3)), /out has length 3, need 1 keys x dim 4/);
  assert.is(s.pull(K()).length, 0);
});

test('apply: sgd per row, rows created on first touch, steps counted', () => {
  const s = new TableStore(cfg());
  const w0 = new TableStore(cfg()).pull(K(1, 2, 3));
  s.pull(K(1));
  s.apply(K(1, 3), Float32Array.of(1, 2, 3, 4, -1, -1, -1, -1)); // row 3 is created by the push
  s.apply(K(1), Float32Array.of(1, 1, 1, 1));
  const w = s.pull(K(1, 2, 3));
  const want = [
    ...[1, 2, 3, 4].map((g, j) => Math.fround(Math.fround(w0[j]! - 0.5 * g) - 0.5)),
    ...w0.subarray(4, 8),
    ...[0, 1, 2, 3].map((j) => Math.fround(w0[8 + j]! + 0.5)),
  ];
  assert.equal(Array.from(w), want);
  const e = s.exportRows();
  assert.equal(Array.from(e.keys), [1n, 2n, 3n]);
  assert.equal(Array.from(e.steps), [2, 0, 1]);
  assert.throws(() => s.apply(K(1), new Float32Array(3)), /grads has length 3/);
});

test(`batched pull and apply (many blocks, odd count, half new rows) equal one key at a time (TEST_SEED=${seed})`, () => {
  // The store handles keys in blocks (cache lines touched first); the result must not depend on it.
  const r = rng(seed);
  const c = cfg({ dim: 20, optimizer: 'adagrad', hyper: { lr: 0.1 } });
  const batched = new TableStore(c), single = new TableStore(c);
  const old = Array.from({ length: 300 }, (_, i) => BigInt(i * 3));
  batched.pull(BigUint64Array.from(old));
  single.pull(BigUint64Array.from(old));
  const keys = new Set<bigint>();
  while (keys.size < 333) keys.add(BigInt(Math.floor(r() * 1800)));
  const k = BigUint64Array.from(keys);
  const grads = Float32Array.from({ length: k.length * 20 }, () => r() - 0.5);
  const pulled = batched.pull(k).slice();
  batched.apply(k, grads);
  for (let i = 0; i < k.length; i++) {
    const one = k.subarray(i, i + 1);
    assert.equal(Array.from(single.pull(one)), Array.from(pulled.subarray(i * 20, i * 20 + 20)), `pull of key ${k[i]}`);
    single.apply(one, grads.subarray(i * 20, i * 20 + 20));
  }
  assert.is(batched.rows, single.rows);
  const a = batched.exportRows(), b = single.exportRows();
  assert.equal(Array.from(a.keys), Array.from(b.keys));
  assert.equal(Array.from(a.values), Array.from(b.values));
  assert.equal(Array.from(a.slots[0]!), Array.from(b.slots[0]!));
  assert.equal(Array.from(a.steps), Array.from(b.steps));
});

test(`export is sorted by key and import round-trips rows, slots and steps (TEST_SEED=${seed})`, () => {
  const r = rng(seed);
  const c = cfg({ dim: 3, optimizer: 'adam', hyper: { lr: 0.01 } });
  const a = new TableStore(c);
  const keys = BigUint64Array.from({ length: 3000 }, (_, i) => (BigInt(Math.floor(r() * 2 ** 32)) << 16n) | BigInt(i));
  a.pull(keys);
  for (let round = 0; round < 3; round++) {
    const some = keys.filter(() => r() < 0.5);
    a.apply(some, Float32Array.from({ length: some.length * 3 }, () => r() - 0.5));
  }
  const e = a.exportRows();
  assert.is(e.keys.length, 3000);
  for (let i = 1; i < e.keys.length; i++) assert.ok(e.keys[i - 1]! < e.keys[i]!, 'sorted ascending');
  assert.is(e.slots.length, 2);
  const b = new TableStore({ ...c, seed: 999n }); // another seed: imported rows must not be re-initialized
  assert.is(b.importRows(e), 3000);
  const f = b.exportRows();
  assert.equal(f.keys, e.keys);
  assert.equal(f.values, e.values);
  assert.equal(f.slots, e.slots);
  assert.equal(f.steps, e.steps);
  assert.equal(Array.from(b.pull(keys.subarray(0, 10))), Array.from(a.pull(keys.subarray(0, 10))));
  // Applying the same update to both continues identically (Adam state and steps came along).
  const g = Float32Array.from({ length: 30 }, () => r() - 0.5);
  a.apply(keys.subarray(0, 10), g);
  b.apply(keys.subarray(0, 10), g);
  assert.equal(Array.from(b.pull(keys.subarray(0, 10))), Array.from(a.pull(keys.subarray(0, 10))));
});

test('import: keep filter, slots by name, missing slots at their initial value, replace existing', () => {
  const c = cfg({ dim: 2, optimizer: 'adagrad', hyper: { initial_accumulator: 0.25 } });
  const s = new TableStore(c);
  s.apply(K(4), Float32Array.of(1, 1)); // existing row, accumulator 1.25
  const data = {
    keys: K(1, 2, 3, 4), values: Float32Array.of(1, 1, 2, 2, 3, 3, 4, 4),
    slots: { accumulator: Float32Array.of(9, 9, 8, 8, 7, 7, 6, 6), m: new Float32Array(8) }, // m: not this optimizer's
    steps: Uint32Array.of(5, 6, 7, 8),
  };
  assert.is(s.importRows(data, (lo) => lo % 2 === 0), 2, 'kept keys 2 and 4');
  let e = s.exportRows();
  assert.equal(Array.from(e.keys), [2n, 4n]);
  assert.equal(Array.from(e.values), [2, 2, 4, 4]);
  assert.equal(Array.from(e.slots[0]!), [8, 8, 6, 6]);
  assert.equal(Array.from(e.steps), [6, 8]);
  s.importRows({ keys: K(4, 9), values: Float32Array.of(0, 1, 2, 3) }); // no slots, no steps
  e = s.exportRows();
  assert.equal(Array.from(e.keys), [2n, 4n, 9n]);
  assert.equal(Array.from(e.slots[0]!), [8, 8, 0.25, 0.25, 0.25, 0.25]);
  assert.equal(Array.from(e.steps), [6, 0, 0]);
});

test('import refuses inconsistent rows and changes nothing', () => {
  const s = new TableStore(cfg({ dim: 2, optimizer: 'adam' }));
  s.pull(K(1, 2));
  const before = s.exportRows();
  const bad: [Parameters<TableStore['importRows']>[0], RegExp][] = [
    [{ keys: K(1), values: new Float32Array(3) }, /values length 3 does not match 1 keys x dim 2/],
    [{ keys: K(1), values: new Float32Array(2), dim: 3 }, /rows have dim 3, the table has dim 2/],
    [{ keys: K(1n << 48n), values: new Float32Array(2) }, /not below 2\^48/],
    [{ keys: K(1), values: new Float32Array(2), slots: [new Float32Array(1)] }, /slot m must be a Float32Array of 1 x 2/],
    [{ keys: K(1), values: new Float32Array(2), slots: [undefined, undefined, new Float32Array(2)] }, /3 slot arrays given, optimizer adam has 2/],
    [{ keys: K(1, 3), values: new Float32Array(4), steps: new Uint32Array(1) }, /steps must be a Uint32Array of length 2/],
  ];
  for (const [data, re] of bad) assert.throws(() => s.importRows(data), re);
  const after = s.exportRows();
  assert.equal(after.keys, before.keys);
  assert.equal(after.values, before.values);
});

test('checkPush refuses wrong length, NaN/Inf, duplicates and keys >= 2^48, naming the cause', () => {
  const k = K(1, 2, 3);
  assert.is(checkPush(2, k, new Float32Array(6)), null);
  assert.is(checkPush(2, K(), new Float32Array(0)), null);
  assert.is(checkPush(1, K((1n << 48n) - 1n), Float32Array.of(1)), null, '2^48 - 1 is a valid row id');
  assert.match(checkPush(2, k, new Float32Array(5))!, /values length 5 does not match 3 keys x dim 2 = 6/);
  for (const bad of [NaN, Infinity, -Infinity]) {
    const v = new Float32Array(6); v[3] = bad;
    assert.match(checkPush(2, k, v)!, new RegExp(`gradient value ${bad} for key 2 \\(position 1, column 1\\) is not finite`));
  }
  assert.match(checkPush(1, K(4, 5, 4), new Float32Array(3))!, /duplicate key 4 at positions 0 and 2/);
  const big = checkPush(1, K(1, 1n << 48n), new Float32Array(2))!;
  assert.match(big, /key 281474976710656 at position 1 is not below 2\^48/);
  // Each cause keeps its own words (the server's codes come from pushProblem, not from these).
  assert.not.match(big, /finite|NaN|Inf|length|dim/i);
  assert.not.match(checkPush(1, K(4, 4), new Float32Array(2))!, /finite|NaN|Inf|length|dim/i);
});

test('checkTableConfig names what is wrong; the constructor refuses the same', () => {
  const cases: [Partial<TableConfig>, RegExp][] = [
    [{ dim: 0 }, /dim 0 is not an integer in \[1, 65536\]/],
    [{ dim: 1.5 }, /dim 1.5/],
    [{ name: '' }, /name must be a non-empty string/],
    [{ name: 'dense' }, /reserved for dense parameters/],
    [{ init: 'glorot' as TableConfig['init'] }, /unknown initializer 'glorot'/],
    [{ optimizer: 'nadam' }, /unknown optimizer 'nadam'/],
    [{ hyper: { learning_rate: 1 } }, /table 1 \(emb\): optimizer 'sgd' has no hyperparameter 'learning_rate'/],
    [{ expectedRows: -5 }, /expectedRows -5/],
  ];
  for (const [over, re] of cases) {
    assert.match(checkTableConfig(cfg(over)) ?? 'null', re);
    assert.throws(() => new TableStore(cfg(over)), re);
  }
  assert.is(checkTableConfig(cfg()), null);
  const s = new TableStore(cfg({ optimizer: 'adam', hyper: { lr: 0.1 } }));
  assert.equal(s.hyper, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
  assert.is(s.slotCount, 2);
  assert.is(s.idealBytesPerRow(), 4 * 4 * 3);
});

test('rows across storage blocks: grown on demand and presized agree with an AdaGrad reference, export and import round-trip', () => {
  // 2^15 rows a block: 70001 rows span three blocks, the presized last block is short and grows.
  const n = 70_001, d = 3, hyper = { lr: 0.1, eps: 1e-10, initial_accumulator: 0.5 };
  const c = cfg({ dim: d, optimizer: 'adagrad', hyper });
  const grown = new TableStore(c), presized = new TableStore({ ...c, expectedRows: n - 1000 });
  const r = rng(seed + 5);
  const init = makeRowInitializer({ init: c.init, scale: c.initScale, seed: c.seed });
  const ref = new Map<number, { w: Float32Array; acc: Float32Array; steps: number }>();
  const refRow = (k: number) => {
    let e = ref.get(k);
    if (!e) {
      const w = new Float32Array(d), kw = keyWords(K(k));
      init(w, 0, d, kw[0]!, kw[1]!);
      e = { w, acc: new Float32Array(d).fill(hyper.initial_accumulator), steps: 0 };
      ref.set(k, e);
    }
    return e;
  };
  for (let round = 0; round < 40; round++) {
    const keys = new Set<number>();
    while (keys.size < 3000) keys.add(Math.floor(r() * n));
    const ks = BigUint64Array.from(keys, BigInt);
    const g = Float32Array.from({ length: ks.length * d }, () => r() * 2 - 1);
    if (round % 2) {
      for (const s of [grown, presized]) s.apply(ks, g);
      let i = 0;
      for (const k of keys) {
        const e = refRow(k);
        e.steps++;
        for (let j = 0; j < d; j++) {
          const gj = g[i * d + j]!;
          // In float32, every operation rounded, in the order of optimizers.ts and its SIMD kernel.
          const f = Math.fround, a = f(e.acc[j]! + f(gj * gj));
          e.acc[j] = a;
          e.w[j] = e.w[j]! - f(f(f(hyper.lr) * gj) / f(f(Math.sqrt(a)) + f(hyper.eps)));
        }
        i++;
      }
    } else {
      const a = grown.pull(ks), b = presized.pull(ks);
      assert.equal(a, b, `round ${round}: the same rows grown and presized`);
      let i = 0;
      for (const k of keys) { assert.equal(Array.from(a.subarray(i * d, i * d + d)), Array.from(refRow(k).w), `round ${round}, key ${k}`); i++; }
    }
  }
  const all = BigUint64Array.from({ length: n }, (_, i) => BigInt(i));
  grown.pull(all); presized.pull(all);
  for (const k of [0, 32767, 32768, 65535, 65536, n - 1]) refRow(k);
  const eg = grown.exportRows(), ep = presized.exportRows();
  assert.equal(eg, ep, 'exports equal');
  assert.is(eg.keys.length, n);
  for (const [k, e] of ref) {
    assert.equal(Array.from(eg.values.subarray(k * d, k * d + d)), Array.from(e.w), `export values of key ${k}`);
    assert.equal(Array.from(eg.slots[0]!.subarray(k * d, k * d + d)), Array.from(e.acc), `export accumulator of key ${k}`);
    assert.is(eg.steps[k], e.steps, `steps of key ${k}`);
  }
  const back = new TableStore(c);
  assert.is(back.importRows(eg), n);
  assert.equal(back.exportRows(), eg, 'import then export round-trips across blocks');
  assert.ok(grown.capacityRows >= n && grown.capacityRows - n < 32768, `slack of the grown table under one block (capacity ${grown.capacityRows})`);
  assert.ok(presized.capacityRows >= n && presized.capacityRows - n < 32768, `presized then grown: slack under one block (capacity ${presized.capacityRows})`);
});

test.run();
