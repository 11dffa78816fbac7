// Batch prep (unique ids, inverse index, CSR of occurrences) vs a brute-force reference.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { permuteTable, prepareTable } from '../src/model/batch-prep.ts';
import { rng, testSeed } from './helpers/reference.ts';

function bruteForce(ids: number[], offsets: number[]) {
  const unique: number[] = [];
  for (const id of ids) if (!unique.includes(id)) unique.push(id);
  const inverse = ids.map((id) => unique.indexOf(id));
  const items: number[][] = unique.map(() => []);
  for (let b = 0; b + 1 < offsets.length; b++) for (let i = offsets[b]; i < offsets[b + 1]; i++) items[inverse[i]].push(b);
  const csrOffsets = [0];
  for (const l of items) csrOffsets.push(csrOffsets[csrOffsets.length - 1] + l.length);
  return { unique, inverse, csrOffsets, csrItems: items.flat() };
}

const seed = testSeed();

test('one id per sample: unique, inverse, CSR match brute force', () => {
  const r = rng(seed);
  for (const [B, range] of [[1, 1], [7, 3], [64, 20], [257, 100000], [300, 2 ** 47]] as const) {
    const ids = Array.from({ length: B }, () => Math.floor(r() * range));
    const p = prepareTable({ ids: Float64Array.from(ids) }, B);
    const want = bruteForce(ids, Array.from({ length: B + 1 }, (_, i) => i));
    assert.equal(Array.from(p.unique), want.unique, `unique (B=${B}, seed ${seed})`);
    assert.equal(Array.from(p.keys, Number), want.unique, 'keys');
    assert.equal(Array.from(p.inverse), want.inverse, 'inverse');
    assert.equal(Array.from(p.csrOffsets), want.csrOffsets, 'csrOffsets');
    assert.equal(Array.from(p.csrItems), want.csrItems, 'csrItems');
    assert.equal(Array.from(p.bagOffsets), Array.from({ length: B + 1 }, (_, i) => i), 'bag offsets');
  }
});

test('multi-hot bags (some empty, repeated ids within a bag) match brute force', () => {
  const r = rng(seed + 1);
  for (let trial = 0; trial < 20; trial++) {
    const B = 1 + Math.floor(r() * 40);
    const offsets = [0];
    const ids: number[] = [];
    for (let b = 0; b < B; b++) {
      const n = Math.floor(r() * 5);
      for (let i = 0; i < n; i++) ids.push(Math.floor(r() * 12));
      offsets.push(ids.length);
    }
    const p = prepareTable({ ids: Uint32Array.from(ids), offsets: Uint32Array.from(offsets) }, B);
    const want = bruteForce(ids, offsets);
    assert.equal(Array.from(p.unique), want.unique, `unique (trial ${trial}, seed ${seed})`);
    assert.equal(Array.from(p.inverse), want.inverse, 'inverse');
    assert.equal(Array.from(p.csrOffsets), want.csrOffsets, 'csrOffsets');
    assert.equal(Array.from(p.csrItems), want.csrItems, 'csrItems');
  }
});

test('permuteTable: rows moved, every occurrence still points at its id, each row keeps its samples in order', () => {
  const r = rng(seed + 2);
  for (let trial = 0; trial < 20; trial++) {
    const B = 1 + Math.floor(r() * 40), offsets = [0], ids: number[] = [];
    for (let b = 0; b < B; b++) {
      const n = Math.floor(r() * 5);
      for (let i = 0; i < n; i++) ids.push(Math.floor(r() * 30));
      offsets.push(ids.length);
    }
    const p = prepareTable({ ids: Uint32Array.from(ids), offsets: Uint32Array.from(offsets) }, B), U = p.unique.length;
    const order = Int32Array.from({ length: U }, (_, j) => j);
    for (let j = U - 1; j > 0; j--) { const k = Math.floor(r() * (j + 1)); [order[j], order[k]] = [order[k]!, order[j]!]; }
    const q = permuteTable(p, order);
    const itemsOf = (t: typeof p, u: number) => Array.from(t.csrItems.subarray(t.csrOffsets[u]!, t.csrOffsets[u + 1]!));
    for (let j = 0; j < U; j++) {
      assert.is(q.unique[j], p.unique[order[j]!], `unique ${j} (trial ${trial}, seed ${seed})`);
      assert.is(q.keys[j], BigInt(q.unique[j]!), 'keys follow unique');
      assert.equal(itemsOf(q, j), itemsOf(p, order[j]!), 'a row keeps its samples, in order');
    }
    for (let i = 0; i < ids.length; i++) assert.is(q.unique[q.inverse[i]!], ids[i], `occurrence ${i} reads its id`);
    assert.is(q.bagOffsets, p.bagOffsets);
    // Keys already in order (the client's grouped array): used as they are, the rest the same.
    const inOrder = BigUint64Array.from(order, (o) => p.keys[o]!), k = permuteTable(p, order, inOrder);
    assert.is(k.keys, inOrder);
    assert.equal([...k.inverse], [...q.inverse]);
  }
  const p = prepareTable({ ids: [5, 6, 5] }, 3);
  assert.throws(() => permuteTable(p, Int32Array.of(0, 1), new BigUint64Array(1)), /1 keys in order for 2 unique rows/);
  assert.throws(() => permuteTable(p, Int32Array.of(0)), /1 entries for 2 unique rows/);
  assert.throws(() => permuteTable(p, Int32Array.of(1, 1)), /not a permutation/);
});

test('prepareTable with a row order equals permuteTable of the unordered table, field by field', () => {
  const r = rng(seed + 3);
  for (let trial = 0; trial < 30; trial++) {
    const B = 1 + Math.floor(r() * 60), multi = trial % 2 === 1, offsets = [0], ids: number[] = [];
    for (let b = 0; b < B; b++) {
      const n = multi ? Math.floor(r() * 5) : 1;
      for (let i = 0; i < n; i++) ids.push(Math.floor(r() * (trial < 10 ? 20 : 2 ** 40)));
      offsets.push(ids.length);
    }
    const batch = multi ? { ids: Float64Array.from(ids), offsets: Uint32Array.from(offsets) } : { ids: Float64Array.from(ids) };
    const plain = prepareTable(batch, B), U = plain.unique.length;
    const order = Int32Array.from({ length: U }, (_, j) => j);
    for (let j = U - 1; j > 0; j--) { const k = Math.floor(r() * (j + 1)); [order[j], order[k]] = [order[k]!, order[j]!]; }
    let seen: BigUint64Array | null = null;
    const inOrder = BigUint64Array.from(order, (o) => plain.keys[o]!);
    const fused = prepareTable(batch, B, (keys) => { seen = keys; return { order, keys: inOrder }; });
    const want = permuteTable(plain, order, inOrder);
    assert.equal([...seen!], [...plain.keys], `the order is asked of the keys in first-occurrence order (trial ${trial}, seed ${seed})`);
    for (const f of ['unique', 'inverse', 'bagOffsets', 'csrOffsets', 'csrItems'] as const) assert.equal([...fused[f]], [...want[f]], `${f} (trial ${trial}, seed ${seed})`);
    assert.is(fused.keys, inOrder, 'the grouped keys as given');
    const none = prepareTable(batch, B, (keys) => ({ order: null, keys }));
    for (const f of ['unique', 'inverse', 'csrOffsets', 'csrItems'] as const) assert.equal([...none[f]], [...plain[f]], `no order: as prepared (${f})`);
  }
  assert.throws(() => prepareTable({ ids: [5, 6, 5] }, 3, (keys) => ({ order: Int32Array.of(1, 1), keys })), /not a permutation/);
  assert.throws(() => prepareTable({ ids: [5, 6, 5] }, 3, () => ({ order: Int32Array.of(1, 0), keys: new BigUint64Array(3) })), /3 keys in order for 2 unique rows/);
});

test('bad input is refused with the cause', () => {
  assert.throws(() => prepareTable({ ids: [1, 2] }, 3), /one id per sample/);
  assert.throws(() => prepareTable({ ids: [1, -2] }, 2), /not an integer/);
  assert.throws(() => prepareTable({ ids: [1, 2.5] }, 2), /not an integer/);
  assert.throws(() => prepareTable({ ids: [1, 2], offsets: Uint32Array.from([0, 2]) }, 2), /length/);
  assert.throws(() => prepareTable({ ids: [1, 2], offsets: Uint32Array.from([0, 1, 3]) }, 2), /from 0 to 2/);
});

test.run();
