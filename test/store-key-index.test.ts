// KeyIndex against a JS Map reference: random inserts and lookups (low-word, high-word and full
// 64-bit keys), growth by rehash with the load factor kept, replace, iteration, clear.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KeyIndex, hash64, MAX_SLOT } from '../src/keys/key-index.ts';
import { rng, testSeed } from './helpers/reference.ts';

const seed = testSeed();
const keyOf = (lo: number, hi: number) => hi * 4294967296 + lo; // exact below 2^53; Map key

test(`200k random keys vs a Map, with growth (TEST_SEED=${seed})`, () => {
  const r = rng(seed);
  const idx = new KeyIndex(); // starts small: must grow many times
  const ref = new Map<string, number>();
  const los: number[] = [], his: number[] = [];
  const n = 200_000;
  const capacities = new Set<number>([idx.capacity]);
  for (let i = 0; i < n; i++) {
    const kind = i % 4;
    // Low-word keys, keys that differ only in the high word, 48-bit row ids and full 64-bit keys.
    const lo = kind === 1 ? 12345 : Math.floor(r() * 4294967296);
    const hi = kind === 0 ? 0 : kind === 1 ? i : kind === 2 ? Math.floor(r() * 65536) : Math.floor(r() * 4294967296);
    const k = `${hi}:${lo}`;
    const had = ref.get(k);
    const got = idx.lookupOrInsert(lo, hi, i);
    if (had === undefined) {
      assert.is(got, -1, 'new key reports -1');
      ref.set(k, i);
      los.push(lo); his.push(hi);
    } else {
      assert.is(got, had, 'present key returns its slot');
    }
    if (i % 997 === 0) {
      assert.ok(idx.size / idx.capacity <= KeyIndex.MAX_LOAD + 1e-9, `load ${idx.size / idx.capacity}`);
      capacities.add(idx.capacity);
    }
  }
  assert.is(idx.size, ref.size);
  assert.ok(capacities.size >= 8 && idx.capacity >= 1024 * Math.min(...capacities), `grew through ${[...capacities].join(', ')}`);
  assert.ok(idx.size / idx.capacity <= KeyIndex.MAX_LOAD);
  assert.is(idx.bytes, idx.capacity * 12, 'three u32 words per bucket');
  // Every key found with its slot; random absent keys are absent.
  for (let i = 0; i < los.length; i++) assert.is(idx.lookup(los[i]!, his[i]!), ref.get(`${his[i]}:${los[i]}`));
  for (let i = 0; i < 20_000; i++) {
    const lo = Math.floor(r() * 4294967296), hi = Math.floor(r() * 4294967296);
    assert.is(idx.lookup(lo, hi), ref.get(`${hi}:${lo}`) ?? -1);
  }
});

test('insert replaces, lookupOrInsert keeps; iteration visits each key once', () => {
  const idx = new KeyIndex(4);
  const ref = new Map<number, number>();
  for (let i = 0; i < 5000; i++) {
    const lo = (i * 2654435761) >>> 0, hi = i % 7 === 0 ? 0xffff_ffff : i % 65536;
    idx.insert(lo, hi, i);
    ref.set(keyOf(lo, hi), i);
  }
  idx.insert(0, 0xffff_ffff, 42); // the key of i = 0 again: replaced
  ref.set(keyOf(0, 0xffff_ffff), 42);
  assert.is(idx.lookupOrInsert(0, 0xffff_ffff, 7), 42, 'lookupOrInsert does not replace');
  assert.is(idx.lookup(0, 0xffff_ffff), 42);
  const seen = new Map<number, number>();
  for (const [lo, hi, slot] of idx) {
    const k = keyOf(lo, hi);
    assert.not.ok(seen.has(k), 'each key once');
    seen.set(k, slot);
  }
  assert.equal(seen, ref);
  let count = 0;
  idx.forEach(() => count++);
  assert.is(count, idx.size);
});

test('lookupHashed and touchHashed by a key\'s hash64 agree with lookup and touch', () => {
  const idx = new KeyIndex(64);
  for (let i = 0; i < 40; i++) idx.insert(i * 7919, i >> 2, i);
  for (let i = 0; i < 80; i++) {
    const lo = i * 7919, hi = i >> 2, h = hash64(lo, hi);
    assert.is(idx.lookupHashed(lo, hi, h), idx.lookup(lo, hi));
    assert.is(idx.touchHashed(h), idx.touch(lo, hi));
  }
});

test('negative (signed) words are the same key as their unsigned value', () => {
  const idx = new KeyIndex();
  idx.insert(-1, -2, 5);
  assert.is(idx.lookup(0xffff_ffff, 0xffff_fffe), 5);
});

test('clear keeps the memory; reserve presizes; slot range is checked', () => {
  const idx = new KeyIndex(1000);
  const cap = idx.capacity;
  assert.ok(cap * KeyIndex.MAX_LOAD >= 1000 && cap / 2 * KeyIndex.MAX_LOAD < 1000, `capacity ${cap} for 1000 keys`);
  for (let i = 0; i < 1000; i++) idx.insert(i, 0, i);
  assert.is(idx.capacity, cap, 'presized: no rehash');
  idx.clear();
  assert.is(idx.size, 0);
  assert.is(idx.capacity, cap);
  assert.is(idx.lookup(5, 0), -1);
  idx.reserve(100_000);
  assert.ok(idx.capacity * KeyIndex.MAX_LOAD >= 100_000);
  idx.insert(1, 2, MAX_SLOT);
  assert.is(idx.lookup(1, 2), MAX_SLOT);
  assert.throws(() => idx.insert(1, 2, MAX_SLOT + 1), /slot/);
  assert.throws(() => idx.insert(1, 2, -1), /slot/);
  assert.throws(() => idx.insert(1, 2, 1.5), /slot/);
});

test('hash64 spreads sequential ids and high-word-only keys evenly over buckets', () => {
  for (const make of [(i: number) => hash64(i, 0), (i: number) => hash64(0, i), (i: number) => hash64(i >>> 4, i & 15)]) {
    const buckets = new Uint32Array(1024);
    const n = 1 << 16;
    for (let i = 0; i < n; i++) buckets[make(i) & 1023]!++;
    const mean = n / 1024;
    let chi = 0;
    for (const b of buckets) chi += (b - mean) ** 2 / mean;
    // chi-square with 1023 degrees of freedom: mean 1023, sd ~45; 1300 is > 6 sd out.
    assert.ok(chi < 1300, `chi-square ${chi.toFixed(0)} too high: clustered buckets`);
  }
  assert.is(hash64(1, 0), hash64(1, 0));
  assert.is.not(hash64(1, 0), hash64(0, 1));
});

test.run();
