// The pure pieces of cutting a request into per-server parts (src/client/row-parts.ts): failed
// parts merged per push number before they are re-routed, so no batch to one server carries one
// number twice (the server refuses such a batch as malformed).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { groupedOrder, mergeBySeq, isIdentity, OwnerGroups, runStart } from '../src/client/row-parts.ts';
import { HashRing } from '../src/cluster/hash-ring.ts';
import { scatterRows } from '../src/util/row-words.ts';

test('mergeBySeq: the pieces of one push number become one part, each position once, others untouched', () => {
  const merged = mergeBySeq([
    { idx: Int32Array.of(4, 9), seq: 7 },
    { idx: Int32Array.of(1), seq: 8 },
    { idx: Int32Array.of(2, 5), seq: 7 },
  ]);
  assert.is(merged.length, 2);
  const seven = merged.find((p) => p.seq === 7)!, eight = merged.find((p) => p.seq === 8)!;
  assert.equal([...seven.idx].sort((a, b) => a - b), [2, 4, 5, 9]);
  assert.equal([...eight.idx], [1]);
  assert.equal(mergeBySeq([]), []);
});

test('isIdentity: every key in order', () => {
  assert.ok(isIdentity(Int32Array.of(0, 1, 2), 3));
  assert.not.ok(isIdentity(Int32Array.of(0, 2), 3));
  assert.ok(isIdentity(new Int32Array(0), 0));
});

test('runStart: a part that is one contiguous run of the request, else -1', () => {
  assert.is(runStart(Int32Array.of(3, 4, 5)), 3);
  assert.is(runStart(Int32Array.of(3, 5, 6)), -1);
  assert.is(runStart(Int32Array.of(7)), 7);
  assert.is(runStart(new Int32Array(0)), -1);
});

test('groupedOrder: the parts one after the other, so each becomes a run; null when they already are', () => {
  const parts = [Int32Array.of(0, 3, 4), Int32Array.of(1, 2, 5)];
  const order = groupedOrder(parts, 6)!;
  assert.equal([...order], [0, 3, 4, 1, 2, 5]);
  // Re-partitioned in the new order (position j holds old order[j]), each part is a run.
  const again = parts.map((p) => Int32Array.from([...order.keys()].filter((j) => p.includes(order[j]!))));
  assert.equal(again.map(runStart), [0, 3]);
  assert.is(groupedOrder([Int32Array.of(0, 1), Int32Array.of(2, 3)], 4), null);
  assert.is(groupedOrder([Int32Array.of(0, 1, 2)], 3), null);
});

test('OwnerGroups: grouped keys are owner runs, reused under their ring and table only', () => {
  const ring = new HashRing(['s0', 's1', 's2']), groups = new OwnerGroups();
  const keys = BigUint64Array.from({ length: 500 }, (_, i) => BigInt(i * 7919 + 3));
  const { order, keys: grouped } = groups.group(ring, 4, keys);
  assert.ok(order, '500 keys on 3 servers are not grouped by owner already');
  assert.equal([...grouped], [...order!].map((j) => keys[j]!), 'grouped keys are keys in order');
  const direct = ring.partition(4, grouped), reused = groups.partition(ring, 4, grouped);
  assert.equal(reused.map((p) => [...p]), direct.map((p) => [...p]), 'the remembered parts are what hashing gives');
  for (const p of reused) assert.ok(p.length === 0 || runStart(p) >= 0, 'each part a contiguous run');
  // Another ring (a new view) or another table: hashed again, not reused.
  const moved = new HashRing(['s0', 's1']);
  assert.equal(groups.partition(moved, 4, grouped).map((p) => [...p]), moved.partition(4, grouped).map((p) => [...p]));
  assert.equal(groups.partition(ring, 5, grouped).map((p) => [...p]), ring.partition(5, grouped).map((p) => [...p]));
  // Already grouped (one server): the same array back, its parts remembered.
  const one = new HashRing(['s0']), same = groups.group(one, 4, keys);
  assert.is(same.order, null);
  assert.is(same.keys, keys);
});

test('OwnerGroups.subset: the keys at some positions of grouped keys keep parts equal to hashing them', () => {
  const ring = new HashRing(['s0', 's1', 's2']), groups = new OwnerGroups();
  const keys = BigUint64Array.from({ length: 400 }, (_, i) => BigInt(i * 104729 + 11));
  const { keys: grouped } = groups.group(ring, 3, keys);
  for (const every of [1, 2, 3, 7]) {
    const at = Int32Array.from({ length: Math.ceil(400 / every) }, (_, k) => k * every);
    const sub = groups.subset(ring, 3, grouped, at);
    assert.equal([...sub], [...at].map((j) => grouped[j]!), 'the keys at those positions');
    const reused = groups.partition(ring, 3, sub), direct = ring.partition(3, sub);
    assert.equal(reused.map((p) => [...p]), direct.map((p) => [...p]), `every ${every}th key: the parts hashing gives`);
    assert.ok(reused !== direct, 'remembered, not hashed again');
  }
  const empty = groups.subset(ring, 3, grouped, new Int32Array(0));
  assert.equal(groups.partition(ring, 3, empty).map((p) => p.length), [0, 0, 0]);
  // Not ascending, or keys never grouped: the plain gather, partitioned afresh when used.
  const back = groups.subset(ring, 3, grouped, Int32Array.of(9, 2, 5));
  assert.equal([...back], [grouped[9]!, grouped[2]!, grouped[5]!]);
  assert.equal(groups.partition(ring, 3, back).map((p) => [...p]), ring.partition(3, back).map((p) => [...p]));
  const loose = groups.subset(ring, 3, keys.slice(), Int32Array.of(1, 4));
  assert.equal([...loose], [keys[1]!, keys[4]!]);
});

test('scatterRows: rows land at their positions, whether idx is a run or not', () => {
  const dim = 3, rows = Float32Array.from({ length: 2 * dim }, (_, i) => i + 1);
  for (const idx of [Int32Array.of(1, 2), Int32Array.of(3, 0), [2, 0]]) {
    const out = new Float32Array(4 * dim).fill(NaN), want = new Float32Array(4 * dim).fill(NaN);
    for (let k = 0; k < idx.length; k++) want.set(rows.subarray(k * dim, (k + 1) * dim), idx[k]! * dim);
    scatterRows(out, idx, rows, dim);
    assert.equal([...out].map(String), [...want].map(String), `idx ${[...idx]}`);
  }
});

test('scatterRows: runs long and short, falling and with holes, as a row-by-row copy places them', () => {
  const dim = 5, idxs = [
    [0, 1, 2, 3, 4, 5, 6, 7], // one run
    [0, 1, 2, 3, 5, 6, 7, 8, 9, 11, 13, 14, 15, 16, 17, 18, 19], // runs of 4, 5, 1, 7 (SSP's early pull: holes)
    [10, 11, 12, 13, 2, 3, 4, 5, 6, 0], // runs out of order
    [7, 6, 5, 4, 3, 2, 1, 0], // falling: no run
    [3, 4, 5, 1, 2, 8, 9, 10, 11], // runs of 3, 2 (row by row), then 4
  ];
  for (const idx of idxs) {
    const rows = Float32Array.from({ length: idx.length * dim }, (_, i) => i + 0.5);
    const out = new Float32Array(20 * dim).fill(NaN), want = new Float32Array(20 * dim).fill(NaN);
    idx.forEach((j, k) => { for (let q = 0; q < dim; q++) want[j * dim + q] = rows[k * dim + q]!; });
    scatterRows(out, Int32Array.from(idx), rows, dim);
    assert.equal([...out].map(String), [...want].map(String), `idx ${idx}`);
  }
});

test.run();
