// The slots of recent key lists (src/server/recent-slots.ts, used by TableStore.slotsOf): a list
// equal in content to a recent one gets its slots without index probes, anything else is probed.
// A table store with the memo must read and update exactly the rows one without it does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SlotsMemo } from '../src/server/recent-slots.ts';
import { TableStore } from '../src/server/table-store.ts';
import { keyWords } from '../src/keys/keys.ts';
import { rng, testSeed } from './helpers/reference.ts';

const seed = testSeed();
const keysFrom = (xs: number[]) => BigUint64Array.from(xs, (x) => BigInt(x));
const words = (xs: number[]) => keyWords(keysFrom(xs));
const iota = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i * 3);

test('SlotsMemo: a hit needs equal content, keeps the four most recent lists, skips short and very long ones', () => {
  const m = new SlotsMemo();
  const a = iota(100), slotsA = Int32Array.from(a, (_, i) => 1000 + i);
  m.remember(words(a), slotsA, a.length);
  slotsA.fill(-1); // the memo kept a copy
  assert.equal(Array.from(m.find(words(a))!.subarray(0, 100)), a.map((_, i) => 1000 + i), 'the same keys in another array');
  assert.is(m.find(words([...a.slice(0, 99), 1e9])), null, 'the last key differs');
  assert.is(m.find(words(a.slice(0, 99))), null, 'one key fewer');
  for (let k = 1; k <= 3; k++) m.remember(words(iota(100, k * 1e6)), new Int32Array(100), 100);
  assert.ok(m.find(words(a)), 'four lists kept');
  for (let k = 4; k <= 7; k++) m.remember(words(iota(100, k * 1e6)), new Int32Array(100), 100);
  assert.is(m.find(words(a)), null, 'the least recently used went');
  m.remember(words(iota(15)), new Int32Array(15), 15);
  assert.is(m.find(words(iota(15))), null, 'fewer than 16 keys are not kept');
  const big = iota((1 << 16) + 1);
  m.remember(words(big), new Int32Array(big.length), big.length);
  assert.is(m.find(words(big)), null, 'more than 65 536 keys are not kept');
});

test('SlotsMemo: a list that is two recent lists interleaved (each in its order) gets their slots; any other mix is probed', () => {
  const m = new SlotsMemo();
  const a = iota(40), b = iota(30, 1e6), slotsA = Int32Array.from(a, (_, i) => 100 + i), slotsB = Int32Array.from(b, (_, i) => 900 + i);
  m.remember(words(a), slotsA, a.length);
  m.remember(words(b), slotsB, b.length);
  m.remember(words(iota(50, 5e6)), new Int32Array(50), 50); // a third list in between
  // a and b merged as an SSP push has them: b's keys among a's, both orders kept.
  const mixed: number[] = [], want: number[] = [];
  let i = 0, j = 0;
  for (let k = 0; k < 70; k++) {
    if (j < 30 && (i >= 40 || k % 3 === 1)) { mixed.push(b[j]!); want.push(900 + j++); } else { mixed.push(a[i]!); want.push(100 + i++); }
  }
  assert.equal(Array.from(m.find(words(mixed))!.subarray(0, 70)), want);
  assert.equal(Array.from(m.find(words([...b, ...a]))!.subarray(0, 70)), [...b.map((_, k) => 900 + k), ...a.map((_, k) => 100 + k)], 'one after the other');
  const swapped = [...mixed];
  [swapped[0], swapped[3]] = [swapped[3]!, swapped[0]!];
  assert.is(m.find(words(swapped)), null, "two of a's keys out of their order");
  assert.is(m.find(words([...mixed.slice(0, 69), 7])), null, 'a key in neither');
  assert.is(m.find(words(mixed.slice(0, 69))), null, 'one key fewer than both');
});

test(`a table store with the memo pulls and updates the rows one without it does, bit for bit (TEST_SEED=${seed})`, () => {
  const r = rng(seed ^ 0x5bd1e995);
  for (const optimizer of ['adagrad', 'sgd', 'ftrl']) {
    const dim = 19, cfg = { id: 1, name: 't', dim, init: 'uniform' as const, initScale: 0.5, seed: 3n, optimizer, hyper: {} };
    const store = new TableStore(cfg), ref = new TableStore(cfg);
    (ref as unknown as { recent: object }).recent = { find: () => null, remember: () => {} }; // the same store without its memo
    // Disjoint lists (each of its own key range), so two of them interleaved are a push of rows pulled in two requests.
    const lists = Array.from({ length: 7 }, (_, k) => Array.from({ length: 24 + k * 37 }, () => k * 5000 + Math.floor(r() * 5000)).filter((x, i, xs) => xs.indexOf(x) === i));
    const memo = (store as unknown as { recent: { find(w: Uint32Array): Int32Array | null } }).recent, find = memo.find.bind(memo);
    let mixing = false, mergedHits = 0;
    /** Both stores pull `k`: the same values, bit for bit. */
    const samePull = (k: BigUint64Array, step: number) => {
      const got = store.pull(k.slice()), want = ref.pull(k.slice());
      for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) assert.unreachable(`${optimizer} step ${step}: pulled value ${i}: ${got[i]}, without the memo ${want[i]}`);
    };
    memo.find = (w) => { const got = find(w); if (got && mixing) mergedHits++; return got; };
    for (let step = 0; step < 200; step++) {
      // Mostly a recent list again (a pull then the push of its rows), sometimes altered in one key, which may be new.
      let keys = [...lists[Math.floor(r() * r() * lists.length)]!];
      mixing = false;
      const other = lists[Math.floor(r() * r() * lists.length)]!;
      if (r() < 0.3 && other[0] !== keys[0]) {
        // Two lists pulled, then their rows pushed interleaved, each in its order (an SSP step's pulls and push).
        for (const l of [keys, other]) samePull(keysFrom(l), step);
        const mixed: number[] = [];
        let j = 0;
        for (const x of keys) { while (j < other.length && r() < 0.4) mixed.push(other[j++]!); mixed.push(x); }
        keys = [...mixed, ...other.slice(j)];
        mixing = true;
      }
      if (r() < (mixing ? 0.05 : 0.25)) { const at = Math.floor(r() * keys.length), x = Math.floor(r() * 6000); if (!keys.includes(x)) keys[at] = x; }
      if (r() < 0.1) keys = keys.reverse();
      const k = keysFrom(keys);
      if (!mixing && r() < 0.5) {
        samePull(k, step);
      } else {
        const g = Float32Array.from({ length: keys.length * dim }, () => r() * 2 - 1);
        store.apply(k.slice(), g);
        ref.apply(k.slice(), g);
      }
    }
    assert.ok(mergedHits >= 15, `${optimizer}: ${mergedHits} interleaved lists found in the memo`);
    const got = store.exportRows(), want = ref.exportRows();
    assert.equal(Array.from(got.keys), Array.from(want.keys), `${optimizer}: the same rows exist`);
    assert.equal(Array.from(got.values), Array.from(want.values), `${optimizer}: rows`);
    got.slots.forEach((s, i) => assert.equal(Array.from(s), Array.from(want.slots[i]!), `${optimizer}: slot ${i}`));
    assert.equal(Array.from(got.steps), Array.from(want.steps), `${optimizer}: update counts`);
  }
});

test.run();
