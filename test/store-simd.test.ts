// The optimizers' WebAssembly SIMD kernels (src/server/optimizer-kernels.ts via simd-rows.ts)
// against (a) the JS reference updates of optimizers.ts, bit for bit (a store with
// scalarUpdates runs those per row), and (b) a float64 reference of one update written here from
// the formulas, on fresh random rows, slots and gradients, at row widths and row counts that are
// not multiples of 4 (the kernels' tails) and pushes that span several scratch chunks.
// Tolerance against float64, with u = 2^-24 (float32's unit roundoff): |got - want| <=
// u * (c * |delta| + 4 * |w|), where delta is the reference's change of w and c bounds the float32
// roundings in the update's chain (SGD 1, SGD with weight decay 3, AdaGrad 6, Adam 11; c is twice
// that, for the error of inputs each rounding sees), plus 4u|w| for the final subtraction and
// the reference's own rounding to float32. Slots: 4u * the sum of their terms' magnitudes (two
// roundings each). A sum that cancels (Adam's m, SGD's g + wd w) keeps its terms' absolute
// error, so |delta| there is computed from the terms' magnitudes (Ref below).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TableStore } from '../src/server/table-store.ts';
import { hasSimdKernel, setTouchFirst } from '../src/server/simd-rows.ts';
import { kernelModule } from '../src/server/optimizer-kernels.ts';
import { instantiate, newMemory } from '../src/util/wasm-module.ts';
import { getOptimizer, registerOptimizer, resolveHyper } from '../src/server/optimizers.ts';
import { pushProblem } from '../src/server/request-checks.ts';
import { ErrorCode } from '../src/wire/codec.ts';
import { rng, testSeed } from './helpers/reference.ts';

const seed = testSeed();
const U = 2 ** -24;

/**
 * One update in float64: w and slots after it, and the error scales: `delta` is the change of w
 * computed with every sum's terms taken by absolute value (a sum that cancels keeps the absolute
 * error of its terms), `sScale` the same for each slot.
 */
interface Ref { w: number; s: number[]; delta: number; sScale: number[] }
type RefStep = (w: number, s: number[], g: number, h: Record<string, number>, step: number) => Ref;

const cases: { optimizer: string; hyper: Record<string, number>; c: number; ref: RefStep }[] = [
  { optimizer: 'sgd', hyper: { lr: 0.3 }, c: 2, ref: (w, _s, g, h) => ({ w: w - h.lr! * g, s: [], delta: Math.abs(h.lr! * g), sScale: [] }) },
  {
    optimizer: 'sgd', hyper: { lr: 0.1, weight_decay: 0.05 }, c: 6,
    ref: (w, _s, g, h) => ({ w: w - h.lr! * (g + h.weight_decay! * w), s: [], delta: h.lr! * (Math.abs(g) + Math.abs(h.weight_decay! * w)), sScale: [] }),
  },
  {
    optimizer: 'adagrad', hyper: { lr: 0.2, eps: 1e-8, initial_accumulator: 0.1 }, c: 12,
    ref: (w, s, g, h) => { const a = s[0]! + g * g, d = (h.lr! * g) / (Math.sqrt(a) + h.eps!); return { w: w - d, s: [a], delta: Math.abs(d), sScale: [a] }; },
  },
  {
    optimizer: 'adam', hyper: { lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6 }, c: 22,
    ref: (w, s, g, h, t) => {
      const m = h.beta1! * s[0]! + (1 - h.beta1!) * g, v = h.beta2! * s[1]! + (1 - h.beta2!) * g * g;
      const mScale = Math.abs(h.beta1! * s[0]!) + Math.abs((1 - h.beta1!) * g);
      const den = Math.sqrt(v / (1 - h.beta2! ** t)) + h.eps!;
      return { w: w - (h.lr! * (m / (1 - h.beta1! ** t))) / den, s: [m, v], delta: (h.lr! * (mScale / (1 - h.beta1! ** t))) / den, sScale: [mScale, v] };
    },
  },
];

/** A SIMD store and a JS-reference store with the same random rows, slots and step counts. */
function twins(optimizer: string, hyper: Record<string, number>, dim: number, keys: BigUint64Array, r: () => number) {
  const cfg = { id: 1, name: 't', dim, init: 'zeros' as const, initScale: 0, seed: 1n, optimizer, hyper };
  const simd = new TableStore(cfg), ref = new TableStore({ ...cfg, scalarUpdates: true });
  const n = keys.length, slotCount = getOptimizer(optimizer).slotCount;
  const rows = {
    keys, values: Float32Array.from({ length: n * dim }, () => r() * 2 - 1),
    // Non-negative, as AdaGrad's accumulator and Adam's v are (m may be either sign; this is enough).
    slots: Array.from({ length: slotCount }, () => Float32Array.from({ length: n * dim }, () => r() * 0.5)),
    steps: Uint32Array.from({ length: n }, () => Math.floor(r() * 5)),
  };
  simd.importRows(rows);
  ref.importRows(rows);
  return { simd, ref, rows };
}

const grads = (r: () => number, n: number) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * (r() < 0.1 ? 50 : r() < 0.1 ? 1e-4 : 1));

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.is(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) assert.unreachable(`${what}[${i}]: SIMD ${a[i]}, JS reference ${b[i]}`);
}

test('the built-in SGD, AdaGrad and Adam tables run the SIMD kernels; FTRL, custom optimizers and scalarUpdates do not', () => {
  for (const o of ['sgd', 'adagrad', 'adam']) {
    assert.ok(hasSimdKernel(o), `${o} has a kernel on this Node`);
    assert.ok(new TableStore({ id: 1, name: 't', dim: 5, init: 'zeros', initScale: 0, seed: 1n, optimizer: o, hyper: {} }).simdUpdates, o);
    assert.not.ok(new TableStore({ id: 1, name: 't', dim: 5, init: 'zeros', initScale: 0, seed: 1n, optimizer: o, hyper: {}, scalarUpdates: true }).simdUpdates);
  }
  assert.not.ok(new TableStore({ id: 1, name: 't', dim: 5, init: 'zeros', initScale: 0, seed: 1n, optimizer: 'ftrl', hyper: {} }).simdUpdates);
  registerOptimizer({ name: 'simd_test_custom', slotCount: 0, defaults: {}, update: (w, wo, g, go, d) => { for (let j = 0; j < d; j++) w[wo + j] -= g[go + j]!; } });
  assert.not.ok(new TableStore({ id: 1, name: 't', dim: 5, init: 'zeros', initScale: 0, seed: 1n, optimizer: 'simd_test_custom', hyper: {} }).simdUpdates);
});

for (const c of cases) {
  test(`${c.optimizer} ${JSON.stringify(c.hyper)}: SIMD equals the JS reference bit for bit and the float64 update within its f32 bound (TEST_SEED=${seed})`, () => {
    const r = rng(seed ^ 0x2545f491);
    const h = resolveHyper(getOptimizer(c.optimizer), c.hyper);
    for (const dim of [1, 3, 6, 17, 64, 67, 301]) {
      const n = dim > 100 ? 53 : 43; // table rows; every 8th is not pushed
      const all = BigUint64Array.from({ length: n }, (_, i) => BigInt(i * 7919 + 3) + (BigInt(i % 4) << 44n)).sort();
      const { simd, ref, rows } = twins(c.optimizer, c.hyper, dim, all, r);
      // The pushed rows: all but every 8th, in a shuffled order; those must not change.
      const keys = all.filter((_, i) => i % 8 !== 7);
      for (let i = keys.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [keys[i], keys[j]] = [keys[j]!, keys[i]!]; }
      const g = grads(r, keys.length * dim);
      simd.apply(keys, g);
      ref.apply(keys, g);
      const got = simd.exportRows(), want = ref.exportRows();
      sameBits(got.values, want.values, `${c.optimizer} dim ${dim} rows`);
      got.slots.forEach((s, k) => sameBits(s, want.slots[k]!, `${c.optimizer} dim ${dim} slot ${k}`));
      assert.equal(Array.from(got.steps), Array.from(want.steps), 'step counts');
      // Against float64, from the f32 state both started at (exportRows is sorted by key, as `all` is).
      const pos = new Map(Array.from(keys, (k, i) => [k, i]));
      for (let i = 0; i < all.length; i++) {
        const at = pos.get(all[i]!);
        for (let j = 0; j < dim; j++) {
          const e = i * dim + j, w0 = rows.values[e]!;
          if (at === undefined) { assert.ok(Object.is(got.values[e], w0), `row ${i} was not pushed and changed`); continue; }
          const s0 = rows.slots.map((s) => s[e]!);
          const want64 = c.ref(w0, s0, g[at * dim + j]!, h, rows.steps[i]! + 1);
          const tol = U * (c.c * Math.abs(want64.delta) + 4 * Math.abs(want64.w)) + 1e-37;
          const diff = Math.abs(got.values[e]! - want64.w);
          if (!(diff <= tol)) assert.unreachable(`${c.optimizer} dim ${dim} row ${i} col ${j}: got ${got.values[e]}, float64 ${want64.w}, |diff| ${diff} > ${tol}`);
          want64.s.forEach((sv, k) => {
            const d = Math.abs(got.slots[k]![e]! - sv);
            if (!(d <= 4 * U * want64.sScale[k]! + 1e-37)) assert.unreachable(`${c.optimizer} dim ${dim} slot ${k} row ${i} col ${j}: got ${got.slots[k]![e]}, float64 ${sv}`);
          });
        }
      }
    }
  });
}

test('a key twice in one apply, and pushes spanning many chunks, equal the JS reference', () => {
  const r = rng(seed ^ 0x68e31da4);
  for (const o of ['sgd', 'adagrad', 'adam']) {
    for (const dim of [5, 67, 20_001]) {
      const n = dim > 1000 ? 3 : 700;
      const all = BigUint64Array.from({ length: n }, (_, i) => BigInt(i + 1));
      const { simd, ref } = twins(o, {}, dim, all, r);
      // Row 1 three times, row 2 twice, in one call (TableStore.apply's callers other than pushes may repeat keys).
      const keys = BigUint64Array.from([...all, 1n, 2n, 1n]);
      const g = grads(r, keys.length * dim);
      simd.apply(keys, g);
      ref.apply(keys, g);
      const got = simd.exportRows(), want = ref.exportRows();
      sameBits(got.values, want.values, `${o} dim ${dim}`);
      got.slots.forEach((s, k) => sameBits(s, want.slots[k]!, `${o} dim ${dim} slot ${k}`));
      assert.equal(Array.from(got.steps), Array.from(want.steps));
    }
  }
});

test('pulls of a SIMD table (the WASM gather) return the JS copy\'s rows bit for bit, create missing rows, and fill exactly their window of a larger frame', () => {
  const r = rng(seed ^ 0x1b873593);
  for (const o of ['sgd', 'adagrad', 'adam']) {
    for (const dim of [1, 3, 17, 64, 67, 301, 20_001]) {
      const n = dim > 1000 ? 5 : 900; // 900 rows: many touch blocks and several gather chunks
      const cfg = { id: 1, name: 't', dim, init: 'uniform' as const, initScale: 0.5, seed: 7n, optimizer: o, hyper: {} };
      const simd = new TableStore(cfg), ref = new TableStore({ ...cfg, scalarUpdates: true });
      assert.ok(simd.simdUpdates && !ref.simdUpdates, `${o}: one store on each path`);
      // Half of the rows exist (pushed once, so rows and slots differ from their initial values); the pull asks for
      // them and for as many new ones, shuffled.
      const old = BigUint64Array.from({ length: n }, (_, i) => BigInt(i * 104729 + 11));
      const g = grads(r, n * dim);
      simd.apply(old, g);
      ref.apply(old, g);
      const keys = BigUint64Array.from([...old, ...Array.from({ length: n }, (_, i) => BigInt(i * 7 + 5) << 30n)]);
      for (let i = keys.length - 1; i > 0; i--) { const j = Math.floor(r() * (i + 1)); [keys[i], keys[j]] = [keys[j]!, keys[i]!]; }
      // Into the middle of a NaN-filled frame, as a reply's values vector: the bytes around it must stay NaN.
      const frame = new Float32Array(keys.length * dim + 2 * 7).fill(NaN), out = frame.subarray(7, 7 + keys.length * dim);
      simd.pull(keys, out);
      sameBits(out, ref.pull(keys), `${o} dim ${dim} pulled rows`);
      for (const i of [0, 6, frame.length - 7, frame.length - 1]) assert.ok(Number.isNaN(frame[i]), `${o} dim ${dim}: frame[${i}] outside the rows was written`);
      assert.is(simd.rows, 2 * n, `${o} dim ${dim}: the missing rows were created`);
    }
  }
});

test('the WASM touch reads one word of every 64-byte line of each span and its last word, and writes nothing', () => {
  const r = rng(seed ^ 0x2545f491);
  const mem = newMemory(1 << 20), touch = instantiate(kernelModule()!, mem).touch as (rows: number, count: number, bytes: number) => number;
  const words = new Int32Array(mem.buffer);
  for (let i = 0; i < words.length; i++) words[i] = (r() * 2 ** 31) | 0;
  const before = words.slice();
  for (const bytes of [4, 60, 64, 68, 256, 508, 512, 1028]) {
    // Spans at 16-byte aligned offsets (the store's rows), so most cross a line boundary; the list at 0.
    const at = Array.from({ length: 37 }, () => 4096 + Math.floor(r() * 60_000) * 16);
    words.set(at, 0);
    before.set(at, 0);
    let want = 0;
    for (const p of at) {
      want = (want + words[(p + bytes - 4) >> 2]!) | 0;
      for (let q = p; q < p + bytes; q += 64) want = (want + words[q >> 2]!) | 0;
    }
    assert.is(touch(0, at.length, bytes), want, `spans of ${bytes} bytes`);
  }
  assert.ok(words.every((w, i) => w === before[i]), 'touch changed the memory');
});

test('pushes and pulls with and without the touch before the kernel are the same bits', () => {
  const r = rng(seed ^ 0x68e31da4);
  for (const o of ['sgd', 'adagrad', 'adam']) {
    const dim = 64, n = 300, cfg = { id: 1, name: 't', dim, init: 'uniform' as const, initScale: 0.5, seed: 7n, optimizer: o, hyper: {} };
    const a = new TableStore(cfg), b = new TableStore(cfg);
    const keys = BigUint64Array.from({ length: n }, (_, i) => BigInt(i * 7919 + 3)), g = grads(r, n * dim);
    try {
      setTouchFirst(false); b.apply(keys, g); b.apply(keys, g); const pb = b.pull(keys);
      setTouchFirst(true); a.apply(keys, g); a.apply(keys, g); const pa = a.pull(keys);
      sameBits(pa, pb, `${o}: rows after two pushes`);
    } finally { setTouchFirst(true); }
  }
});

test('NaN and Inf gradients are refused before the table is touched, as before', () => {
  const keys = BigUint64Array.of(1n, 2n);
  for (const bad of [NaN, Infinity, -Infinity]) {
    const v = new Float32Array(2 * 7).fill(0.5);
    v[9] = bad;
    const p = pushProblem(7, keys, v);
    assert.is(p?.code, ErrorCode.NonFinite, `${bad}`);
    assert.match(p!.message, /key 2 \(position 1, column 2\) is not finite/);
  }
});

test.run();
