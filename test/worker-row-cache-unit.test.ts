// RowCache alone (src/worker/row-cache.ts), no servers: the SSP rule at its boundary (a row of
// freshness m serves clock c exactly while c - s <= m), ASP's refresh interval, rows of unknown
// freshness never held, the local update equal to the servers' (SGD, also fp16- and bf16-rounded), and
// eviction: expired rows first, then the least recently used, never a row of the current clock.
// Stateful (AdaGrad): the plan (state kept, second touch), a row held only with its state, the
// state outliving its row for row-only refreshes, and the local update equal to the servers'.
// The local update runs in the servers' WASM SIMD kernels where it can (asserted), and equals the
// JS path bit for bit (SGD with and without weight decay on every wire, AdaGrad, Adam: rows, slots
// and counts, through inserts, refreshes and evictions). One lookup a step: its slots serve, hold
// and take the push, and a lookup the cache moved past (an insert not through it, an eviction, a
// clear) is done again.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RowCache, ADMIT_WINDOW, HIT, PULL_ROW, PULL_STATE, PULL_ONCE, type RowCacheOptions } from '../src/worker/row-cache.ts';
import { getOptimizer, resolveHyper } from '../src/server/optimizers.ts';
import { f16ToF32, f32ToF16 } from '../src/wire/f16.ts';
import { bf16ToF32, f32ToBf16 } from '../src/wire/bf16.ts';
import { randomFloats } from './helpers/random.ts';

const sgd = getOptimizer('sgd');
const DIM = 3;
const cache = (o: Partial<RowCacheOptions> = {}) => new RowCache({
  dim: DIM, capacity: 8, consistency: 'ssp', staleness: 2, aspRefresh: 3, update: sgd.update, optimizer: 'sgd', hyper: resolveHyper(sgd, { lr: 0.5 }), format: 'f32', ...o,
});
/** The positions a lookup's codes do not serve. */
const notHit = (code: Uint8Array) => Int32Array.from(Array.from(code).flatMap((x, j) => (x === HIT ? [] : [j])));
/** Positions of the keys `c` cannot serve at `clock` (counts nothing). */
const missing = (c: RowCache, k: BigUint64Array, clock: number) => notHit(c.lookup(k, clock).code);
/** Serves what `c` holds for `clock` into `out` (counted); the positions of the others. */
const serve = (c: RowCache, k: BigUint64Array, clock: number, out: Float32Array) => notHit(c.serveLookup(c.lookup(k, clock), out).code);
const keys = (...k: number[]) => BigUint64Array.from(k.map(BigInt));
const all = (n: number) => Int32Array.from({ length: n }, (_, i) => i);

test('SSP(2): a row of freshness 5 serves clocks up to 7, not 8; unknown freshness (-1) is never held', () => {
  const c = cache();
  const k = keys(1, 2);
  c.insert(k, [0], randomFloats(2 * DIM, 1), 5, 6);
  c.insert(k, [1], randomFloats(2 * DIM, 2), -1, 6);
  assert.equal(Array.from(missing(c, k, 7)), [1]);
  assert.equal(Array.from(missing(c, k, 8)), [0, 1]);
  const out = new Float32Array(2 * DIM).fill(NaN);
  assert.equal(Array.from(serve(c, k, 7, out)), [1]);
  assert.ok(out.subarray(0, DIM).every(Number.isFinite) && out.subarray(DIM).every(Number.isNaN), 'only the held row is written');
  assert.equal(c.stats, { hits: 1, misses: 1, evictions: 0, bytesSaved: 8 + 4 * DIM });
});

test('a reply claiming more freshness than the read clock is held as of the read clock', () => {
  const c = cache();
  c.insert(keys(1), [0], randomFloats(DIM, 13), 2 ** 40, 6);
  assert.equal(Array.from(c.peek(keys(1))), [6]);
  assert.is(missing(c, keys(1), 9).length, 1);
});

test('ASP: a row read at clock 4 is served at clocks 4..6 (refresh 3), then pulled again', () => {
  const c = cache({ consistency: 'asp' });
  const k = keys(9);
  c.insert(k, [0], randomFloats(DIM, 3), -1, 4); // ASP does not need the reply's freshness
  assert.is(missing(c, k, 6).length, 0);
  assert.is(missing(c, k, 7).length, 1);
});

test('the local update is the servers\' SGD update, bit for bit, on the gradient the wire carries (f32, f16 or bf16)', () => {
  for (const format of ['f32', 'f16', 'bf16'] as const) {
    const c = cache({ format });
    assert.ok(c.simdUpdates, 'SGD runs in the WASM kernel');
    const k = keys(3, 4, 5), rows = randomFloats(3 * DIM, 4), grads = randomFloats(3 * DIM, 5), before = grads.slice();
    c.insert(k, all(3), rows, 0, 0);
    c.applyPush(k, grads);
    assert.equal(Array.from(grads), Array.from(before), 'the caller\'s gradients are left as they were');
    const sent = format === 'f16' ? f16ToF32(f32ToF16(grads)) : format === 'bf16' ? bf16ToF32(f32ToBf16(grads)) : grads;
    if (format !== 'f32') assert.ok(sent.some((v, i) => v !== grads[i]), `${format} rounds some of these gradients`);
    const want = Float32Array.from(rows);
    for (let j = 0; j < 3; j++) sgd.update(want, j * DIM, sent, j * DIM, DIM, [], 0, 1, resolveHyper(sgd, { lr: 0.5 }));
    const got = new Float32Array(3 * DIM);
    c.peek(k, got);
    assert.equal(Array.from(got), Array.from(want), `${format} wire`);
  }
});

test('eviction: expired rows first, then the least recently used; rows of the current clock stay', () => {
  const c = cache({ capacity: 8 });
  // Clock 0: rows 0-3 (freshness 0: expire after clock 2); clock 3: rows 10-13 (freshness 3).
  c.insert(keys(0, 1, 2, 3), all(4), randomFloats(4 * DIM, 6), 0, 0);
  c.insert(keys(10, 11, 12, 13), all(4), randomFloats(4 * DIM, 7), 3, 3);
  // Clock 4 uses 12 and 13; clock 5 inserts one row into the full cache.
  serve(c, keys(12, 13), 4, new Float32Array(2 * DIM));
  c.insert(keys(20), [0], randomFloats(DIM, 8), 5, 5);
  // Rows 0-3 expired (0 < 5 - 2): all four go, though one slot was enough; nothing live went.
  assert.is(c.stats.evictions, 4);
  assert.equal(Array.from(c.peek(keys(0, 1, 2, 3, 10, 11, 12, 13, 20))), [-1, -1, -1, -1, 3, 3, 3, 3, 5]);
  // No row expired (a large bound): the least recently used goes, an eighth of the capacity (1 row).
  const l = cache({ capacity: 8, staleness: 100 });
  for (let k = 0; k < 8; k++) l.insert(keys(k), [0], randomFloats(DIM, 20 + k), k, k); // row k last used at clock k
  serve(l, keys(0), 8, new Float32Array(DIM)); // row 0 used again: row 1 is now the least recently used
  l.insert(keys(99), [0], randomFloats(DIM, 9), 9, 9);
  assert.equal(Array.from(l.peek(keys(0, 1, 2, 99))), [0, -1, 2, 9]);
  assert.is(l.stats.evictions, 1);
  assert.is(l.size, 8);
  // A step larger than the cache: rows of the current clock are never evicted for each other.
  const d = cache({ capacity: 2 });
  d.insert(keys(1, 2, 3), all(3), randomFloats(3 * DIM, 11), 7, 7);
  assert.equal(Array.from(d.peek(keys(1, 2, 3))), [7, 7, -1]);
});

const adagrad = getOptimizer('adagrad');
const stateful = (o: Partial<RowCacheOptions> = {}) => cache({ update: adagrad.update, optimizer: 'adagrad', hyper: resolveHyper(adagrad, { lr: 0.5 }), slotCount: 1, stateRefresh: 4, admit: 'second-touch', ...o });
const stateOf = (n: number, seed: number) => ({ slots: [randomFloats(n * DIM, seed).map(Math.abs)], steps: Float32Array.from({ length: n }, (_, i) => i + 1) });

/** How a stateful cache pulls positions `idx` at `clock` (its lookup's codes): with their state, or as rows only. */
const plan = (c: RowCache, k: BigUint64Array, idx: number[] | Int32Array, clock: number) => {
  const code = c.lookup(k, clock).code, at = Array.from(idx);
  return { withState: at.filter((j) => code[j] === PULL_STATE), rowsOnly: at.filter((j) => code[j] !== PULL_STATE) };
};

test('stateful plan: second touch within the window pulls with state; a held state serves row-only refreshes for stateRefresh clocks', () => {
  const c = stateful();
  const k = keys(1, 2);
  // Never seen: rows only, and not held.
  assert.equal(Array.from(plan(c, k, all(2), 0).rowsOnly), [0, 1]);
  c.insert(k, all(2), randomFloats(2 * DIM, 1), 0, 0);
  assert.is(c.size, 0, 'a stateful cache holds no row without its state');
  c.touchSeen(k, 0);
  // Seen at clock 0: admitted at clocks 1 .. ADMIT_WINDOW, not at the same clock nor after the window.
  assert.equal(Array.from(plan(c, k, all(2), 0).withState), []);
  assert.equal(Array.from(plan(c, k, all(2), 1).withState), [0, 1]);
  assert.equal(Array.from(plan(c, k, all(2), ADMIT_WINDOW + 1).withState), []);
  c.insertWithState(k, [0], randomFloats(2 * DIM, 2), 1, 1, stateOf(1, 3));
  assert.is(c.statePulls, 1);
  // Row of freshness 1 expires after clock 3; its state (read at 1) serves refreshes up to clock 5.
  assert.is(missing(c, k.subarray(0, 1), 4).length, 1);
  assert.equal(Array.from(plan(c, k, [0], 5).rowsOnly), [0]);
  assert.equal(Array.from(plan(c, k, [0], 6).withState), [0]);
  // A row-only refresh keeps the held state and makes the row servable again.
  c.insert(k, [0], randomFloats(2 * DIM, 4), 5, 5);
  assert.is(missing(c, k.subarray(0, 1), 5).length, 0);
});

test('stateful local update: row, accumulator and count as the servers apply them, also while the row is expired', () => {
  const c = stateful();
  assert.ok(c.simdUpdates, 'AdaGrad runs in the WASM kernel');
  const k = keys(3, 4), rows = randomFloats(2 * DIM, 5), st = stateOf(2, 6), g = randomFloats(2 * DIM, 7);
  c.insertWithState(k, all(2), rows, 0, 0, st);
  c.applyPush(k, g);
  c.applyPush(k, g);
  const w = Float32Array.from(rows), acc = Float32Array.from(st.slots[0]!), hyper = resolveHyper(adagrad, { lr: 0.5 });
  for (let r = 0; r < 2; r++) for (let j = 0; j < 2; j++) adagrad.update(w, j * DIM, g, j * DIM, DIM, [acc], j * DIM, 0, hyper);
  const got = new Float32Array(2 * DIM), gotState = { slots: [new Float32Array(2 * DIM)], steps: new Float32Array(2) };
  c.peek(k, got, gotState);
  assert.equal(Array.from(got), Array.from(w));
  assert.equal(Array.from(gotState.slots[0]!), Array.from(acc));
  assert.equal(Array.from(gotState.steps), [3, 4]);
  assert.throws(() => stateful({ format: 'f16' }), /only on an f32 wire/);
  assert.throws(() => stateful({ format: 'bf16' }), /only on an f32 wire/);
});

test('the WASM kernel path equals the JS path bit for bit: SGD (+ weight decay, f16, bf16), AdaGrad, Adam, through refreshes and evictions', () => {
  const adam = getOptimizer('adam');
  const cases: [string, Partial<RowCacheOptions>][] = [
    ['sgd', {}], ['sgd f16', { format: 'f16' }], ['sgd bf16', { format: 'bf16' }],
    ['sgd wd', { hyper: resolveHyper(sgd, { lr: 0.5, weight_decay: 0.01 }) }],
    ['adagrad', { update: adagrad.update, optimizer: 'adagrad', hyper: resolveHyper(adagrad, { lr: 0.5 }), slotCount: 1, stateRefresh: 2, admit: 'all' }],
    ['adam', { update: adam.update, optimizer: 'adam', hyper: resolveHyper(adam, { lr: 0.1 }), slotCount: 2, stateRefresh: 2, admit: 'all' }],
  ];
  const dim = 7; // not a multiple of 4: the kernels' scalar tail runs too
  for (const [what, o] of cases) {
    const mk = (simd: boolean) => cache({ dim, capacity: 16, ...o, simd });
    const [wasm, js] = [mk(true), mk(false)];
    assert.ok(wasm.simdUpdates && !js.simdUpdates, what);
    const k = o.slotCount ?? 0;
    for (let clock = 0; clock < 12; clock++) {
      // 10 of 24 keys a clock (more than the cache holds over a few clocks: evictions), a seeded pick.
      const ks = BigUint64Array.from({ length: 10 }, (_, i) => BigInt((clock * 7 + i * 5) % 24));
      const rows = randomFloats(10 * dim, 100 + clock), idx = all(10);
      for (const c of [wasm, js]) {
        const miss = serve(c, ks, clock, new Float32Array(10 * dim));
        if (k > 0) c.insertWithState(ks, miss.filter((j) => j % 2 === 0), rows, clock, clock, { slots: Array.from({ length: k }, (_, q) => randomFloats(10 * dim, 200 + clock * 4 + q).map(Math.abs)), steps: Float32Array.from(idx, (j) => j + clock) });
        c.insert(ks, miss, rows, clock, clock);
        c.applyPush(ks, randomFloats(10 * dim, 300 + clock));
        c.applyPush(ks, randomFloats(10 * dim, 400 + clock)); // a second push: Adam's count moves on
      }
      const probe = BigUint64Array.from({ length: 24 }, (_, i) => BigInt(i));
      const look = (c: RowCache) => {
        const out = new Float32Array(24 * dim), st = { slots: Array.from({ length: k }, () => new Float32Array(24 * dim)), steps: new Float32Array(24) };
        return { held: Array.from(c.peek(probe, out, st)), out: Array.from(out), slots: st.slots.map((x) => Array.from(x)), steps: Array.from(st.steps) };
      };
      const [a, b] = [look(wasm), look(js)];
      assert.equal(a, b, `${what}, clock ${clock}`);
      assert.ok(a.held.filter((x) => x >= 0).length > 0, `${what}: rows are held`);
    }
    assert.ok(wasm.stats.evictions > 0 && wasm.stats.evictions === js.stats.evictions, `${what}: evictions ${wasm.stats.evictions}`);
  }
});

/** SGD applied to `rows` with `grads` (both keys x DIM), as the servers apply it. */
const sgdApplied = (rows: Float32Array, grads: Float32Array) => {
  const want = Float32Array.from(rows);
  for (let j = 0; j < rows.length / DIM; j++) sgd.update(want, j * DIM, grads, j * DIM, DIM, [], 0, 1, resolveHyper(sgd, { lr: 0.5 }));
  return Array.from(want);
};

test('one lookup a step: served, held and pushed through its slots; done again once the cache changed other than through it', () => {
  for (const simd of [true, false]) {
    // Through the lookup: the rows it held are where the push lands (their new slots are in it).
    const c = cache({ simd });
    const k = keys(1, 2, 3), rows = randomFloats(3 * DIM, 30), g = randomFloats(3 * DIM, 31);
    c.insert(k.subarray(0, 1), [0], rows, 0, 0);
    const l = c.lookup(k, 1);
    assert.equal(Array.from(l.code), [HIT, PULL_ROW, PULL_ROW]);
    const out = new Float32Array(3 * DIM);
    assert.is(c.serveLookup(l, out), l, 'current: served as found');
    c.insert(k, [1, 2], rows, 1, 1, l);
    assert.ok(l.slot[1]! >= 0 && l.slot[2]! >= 0, 'new rows\' slots written into the lookup');
    c.applyPush(k, g);
    const got = new Float32Array(3 * DIM);
    c.peek(k, got);
    assert.equal(Array.from(got), sgdApplied(rows, g), `simd ${simd}: every held row took the push`);
    // An insert not through the last serve's lookup: the push probes again and finds the new row.
    const d = cache({ simd });
    d.serveLookup(d.lookup(k, 0), new Float32Array(3 * DIM)); // nothing held: every slot -1
    d.insert(k, [0, 1, 2], rows, 0, 0);
    d.applyPush(k, g);
    d.peek(k, got);
    assert.equal(Array.from(got), sgdApplied(rows, g), `simd ${simd}: rows held after the lookup took the push`);
    // clear(): a lookup from before is done again, nothing read before is served.
    const e = cache({ simd });
    e.insert(k, [0, 1, 2], rows, 0, 0);
    const before = e.lookup(k, 1);
    e.clear();
    const nan = new Float32Array(3 * DIM).fill(NaN), again = e.serveLookup(before, nan);
    assert.ok(again !== before && Array.from(again.code).every((x) => x !== HIT) && nan.every(Number.isNaN), 'nothing served after clear');
    assert.is(e.stats.hits, 0);
  }
});

test('an eviction while inserting through a lookup: later rows probe, the push finds every held row', () => {
  const c = cache({ capacity: 4 });
  c.insert(keys(0, 1, 2, 3), all(4), randomFloats(4 * DIM, 40), 0, 0); // freshness 0: expired at clock 5
  // Key 0 is held (expired): its slot in the lookup is the one the eviction frees before it is placed.
  const k = keys(10, 0, 12), rows = randomFloats(3 * DIM, 41), g = randomFloats(3 * DIM, 42);
  const l = c.lookup(k, 5);
  assert.ok(l.slot[1]! >= 0 && l.code[1] === PULL_ROW);
  c.serveLookup(l, new Float32Array(3 * DIM));
  c.insert(k, all(3), rows, 5, 5, l);
  assert.is(c.stats.evictions, 4);
  c.applyPush(k, g);
  const got = new Float32Array(3 * DIM);
  assert.equal(Array.from(c.peek(k, got)), [5, 5, 5]);
  assert.equal(Array.from(got), sgdApplied(rows, g));
});

test('stateful lookup codes: a usable held state pulls a row, an admitted miss its state, the rest once', () => {
  const c = stateful();
  const k = keys(1, 2, 3);
  c.touchSeen(k.subarray(0, 2), 0); // keys 1 and 2 seen at clock 0
  c.insertWithState(k, [0], randomFloats(3 * DIM, 50), 1, 1, stateOf(1, 51)); // key 1 held with its state, read at clock 1
  assert.equal(Array.from(c.lookup(k, 2).code), [HIT, PULL_STATE, PULL_ONCE]);
  assert.equal(Array.from(c.lookup(k, 4).code), [PULL_ROW, PULL_STATE, PULL_ONCE], 'row expired (freshness 1 < 4 - 2), state usable (read at 1, refresh 4)');
});

test('stateless second-touch: a miss seen in the last ADMIT_WINDOW clocks is held (PULL_ROW), the others pulled once; a held row is refreshed whatever was seen', () => {
  const c = cache({ admit: 'second-touch' });
  const k = keys(1, 2, 3);
  assert.equal(Array.from(c.lookup(k, 0).code), [PULL_ONCE, PULL_ONCE, PULL_ONCE], 'never seen');
  c.touchSeen(k.subarray(0, 2), 0); // keys 1 and 2 seen at clock 0
  assert.equal(Array.from(c.lookup(k, 0).code), [PULL_ONCE, PULL_ONCE, PULL_ONCE], 'not at the clock they were seen at');
  assert.equal(Array.from(c.lookup(k, 1).code), [PULL_ROW, PULL_ROW, PULL_ONCE]);
  assert.equal(Array.from(c.lookup(k, ADMIT_WINDOW + 1).code), [PULL_ONCE, PULL_ONCE, PULL_ONCE], 'past the window');
  c.insert(k, [0], randomFloats(3 * DIM, 60), 1, 1); // key 1 held, freshness 1
  assert.equal(Array.from(c.lookup(k, 3).code), [HIT, PULL_ROW, PULL_ONCE]);
  assert.equal(Array.from(c.lookup(k, ADMIT_WINDOW + 2).code), [PULL_ROW, PULL_ONCE, PULL_ONCE], 'an expired held row is refreshed in place');
  // Without second-touch every miss is held.
  assert.equal(Array.from(cache().lookup(k, 0).code), [PULL_ROW, PULL_ROW, PULL_ROW]);
});

test('clear forgets every row', () => {
  const c = cache();
  c.insert(keys(1), [0], randomFloats(DIM, 12), 3, 3);
  c.clear();
  assert.is(c.size, 0);
  assert.is(missing(c, keys(1), 3).length, 1);
});

test.run();
