// BspAccumulator, the BSP sums of one clock: sums per key across pushes in f64 (arrival order does
// not change the result), drains in first-seen order, and applying the drained sums once equals
// one apply of the sums (moved here from the removed GradAccumulator's test in store-table).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TableStore, type TableConfig } from '../src/server/table-store.ts';
import { BspAccumulator } from '../src/server/bsp-accumulator.ts';
import { keyNumber } from '../src/keys/keys.ts';

const cfg = (over: Partial<TableConfig> = {}): TableConfig => ({
  id: 1, name: 'emb', dim: 4, init: 'uniform', initScale: 0.5, seed: 11n, optimizer: 'sgd', hyper: { lr: 0.5 }, ...over,
});
const K = (...ks: (number | bigint)[]) => BigUint64Array.from(ks, (k) => BigInt(k));

test('sums per key across pushes; applying the drained sums equals one apply of the sums', () => {
  const c = cfg({ dim: 2, optimizer: 'adagrad', hyper: { lr: 0.5 } });
  const bsp = new TableStore(c), direct = new TableStore(c);
  const acc = new BspAccumulator(2, 1);
  acc.add(K(7, 1), Float32Array.of(0.1, 0.2, 1, 1));
  acc.add(K(1, 8), Float32Array.of(2, 3, -1, -1));
  acc.add(K(7), Float32Array.of(0.2, 0.2));
  for (let i = 0; i < 100; i++) acc.add(K(1000 + i), Float32Array.of(i, i)); // grows past its presize
  assert.is(acc.rows, 103);
  assert.is(bsp.rows, 0, 'accumulating does not touch the table');
  direct.apply(K(7, 1, 8), Float32Array.of(0.1 + 0.2, 0.2 + 0.2, 3, 4, -1, -1));
  direct.apply(BigUint64Array.from({ length: 100 }, (_, i) => BigInt(1000 + i)), Float32Array.from({ length: 200 }, (_, j) => Math.floor(j / 2)));
  const drained = acc.drain();
  assert.is(drained.keys.length, 103);
  bsp.apply(drained.keys, drained.grads);
  assert.is(acc.rows, 0, 'reset by drain');
  const d = direct.exportRows(), b = bsp.exportRows();
  assert.equal(b.keys, d.keys);
  assert.equal(b.values, d.values);
  assert.equal(Array.from(b.steps), new Array(103).fill(1), 'one update per row per clock');
  // drain(): first-seen order, summed in f64, then empty with memory kept.
  acc.add(K(3, 2), Float32Array.of(1, 1, 2, 2));
  acc.add(K(3), Float32Array.of(0.5, 0.5));
  const { keys, grads } = acc.drain();
  assert.equal(Array.from(keys), [3n, 2n]);
  assert.equal(Array.from(grads), [1.5, 1.5, 2, 2]);
  assert.is(acc.rows, 0);
  assert.throws(() => new BspAccumulator(0), /dim 0 is not an integer/);
  assert.throws(() => acc.add(K(1), new Float32Array(3)), /grads length 3 does not match 1 keys x dim 2/);
});

test('f64 sums: the order pushes arrive in does not change the result', () => {
  // In f32, 1e8 + 1 + ... loses the ones; in f64 every order gives the same sum.
  const parts = [1e8, 1, 1, 1, -1e8, 0.25, 3];
  const orders = [parts, [...parts].reverse(), [1, -1e8, 3, 1, 0.25, 1e8, 1]];
  const results = orders.map((order) => {
    const acc = new BspAccumulator(1);
    for (const g of order) acc.add(K(5), Float32Array.of(g));
    return acc.drain().grads[0];
  });
  assert.equal(results, [6.25, 6.25, 6.25]);
});

test('snapshot copies the f64 sums of the rows asked for, in first-seen order, and changes nothing', () => {
  const acc = new BspAccumulator(2);
  const big = 2n ** 47n + 3n;
  acc.add(K(9, big, 4), Float64Array.of(0.5, 1, 1e-300, 2, 3, 4));
  acc.add(K(4), Float64Array.of(1, 1));
  const keep = new Set([9, Number(big)]);
  const snap = acc.snapshot((lo, hi) => keep.has(keyNumber(lo, hi)));
  assert.equal(Array.from(snap.keys), [9n, big]);
  assert.instance(snap.sums, Float64Array);
  assert.equal(Array.from(snap.sums), [0.5, 1, 1e-300, 2], 'f64 kept (1e-300 is 0 in f32)');
  assert.is(acc.rows, 3);
  // A copy added elsewhere gives the same sums (how a new replica or a joining server gets them).
  const copy = new BspAccumulator(2);
  const all = acc.snapshot(() => true);
  copy.add(all.keys, all.sums);
  assert.equal(copy.drain(), acc.drain());
});

test('addPush holds a clock\'s first push unsummed: the same bits as summing it, alone or with more pushes', () => {
  const dim = 3, rand = (n: number) => Float32Array.from({ length: n }, (_, i) => (i % 7 === 0 ? -0 : i % 11 === 0 ? 1e-40 : (Math.random() - 0.5) * 10 ** ((i % 5) - 2)));
  const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
  const drainOf = (pushes: [BigUint64Array, Float32Array][], held: boolean) => {
    const acc = new BspAccumulator(dim);
    for (const [k, g] of pushes) (held ? acc.addPush(k, g) : acc.add(k, g));
    const rows = acc.rows, d = acc.drain();
    return { rows, keys: Array.from(d.keys), bits: bits(d.grads) };
  };
  const a: [BigUint64Array, Float32Array] = [K(5, 2n ** 47n + 1n, 9, 1), rand(12)];
  const b: [BigUint64Array, Float32Array] = [K(9, 4), rand(6)];
  for (const pushes of [[a], [a, b], [b, a, b]]) {
    const summed = drainOf(pushes, false), held = drainOf(pushes, true);
    assert.equal(held, summed, `${pushes.length} push(es)`);
  }
  assert.ok(drainOf([a], true).bits.includes(0) && !drainOf([a], true).bits.includes(0x80000000), '-0 comes out as +0, as its f64 sum does');
  // Reused across clocks: a smaller push after a larger one, and a snapshot folds the held push first.
  const acc = new BspAccumulator(dim);
  acc.addPush(...a);
  acc.drain();
  acc.addPush(...b);
  assert.is(acc.rows, 2);
  const snap = acc.snapshot(() => true);
  assert.equal(Array.from(snap.keys), [9n, 4n]);
  assert.equal(Array.from(snap.sums), Array.from(b[1]).map((x) => x + 0));
  assert.equal(bits(acc.drain().grads), drainOf([b], false).bits);
  assert.is(acc.rows, 0);
  // A push is not held when its shape is wrong: add() refuses it.
  assert.throws(() => acc.addPush(K(1), new Float32Array(2)), /grads length 2 does not match 1 keys x dim 3/);
});

test.run();
