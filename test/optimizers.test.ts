// Each built-in update function against a float64 reference written here from the papers'
// formulas, over several steps on random data, through TableStore.apply (so per-row step counts
// and slot storage are exercised too). The reference keeps its state rounded to f32 after each
// step, as the store does; tolerance: |got - want| <= 1e-6 * max(1, |want|) (a few f32 ulps).
// Then custom optimizers: registerOptimizer validation and modules loaded from temp files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getOptimizer, registerOptimizer, loadOptimizerModule, resolveHyper, optimizerNames, type OptimizerDef } from '../src/server/optimizers.ts';
import { TableStore } from '../src/server/table-store.ts';
import { rng, testSeed } from './helpers/reference.ts';

const seed = testSeed();
const f32 = Math.fround;
const TOL = 1e-6;

function close(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.is(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (!(Math.abs(g - w) <= TOL * Math.max(1, Math.abs(w)))) assert.unreachable(`${what}[${i}]: got ${g}, want ${w}`);
  }
}

/** Reference state of one row: w plus named slots, all f32-rounded between steps. */
type RefRow = { w: number[]; s: Record<string, number[]>; t: number };
type RefStep = (row: RefRow, g: number[], h: Record<string, number>) => void;

const refSgd: RefStep = (row, g, h) => {
  row.w = row.w.map((w, j) => f32(w - h.lr! * (g[j]! + (h.weight_decay ?? 0) * w)));
};
const refAdagrad: RefStep = (row, g, h) => {
  const acc = row.s.accumulator!;
  for (let j = 0; j < g.length; j++) {
    const a = acc[j]! + g[j]! * g[j]!;
    acc[j] = f32(a);
    row.w[j] = f32(row.w[j]! - (h.lr! * g[j]!) / (Math.sqrt(a) + h.eps!));
  }
};
const refAdam: RefStep = (row, g, h) => {
  const { m, v } = row.s as { m: number[]; v: number[] };
  const t = row.t;
  for (let j = 0; j < g.length; j++) {
    m[j] = f32(h.beta1! * m[j]! + (1 - h.beta1!) * g[j]!);
    v[j] = f32(h.beta2! * v[j]! + (1 - h.beta2!) * g[j]! ** 2);
    const mHat = m[j]! / (1 - h.beta1! ** t), vHat = v[j]! / (1 - h.beta2! ** t);
    row.w[j] = f32(row.w[j]! - (h.lr! * mHat) / (Math.sqrt(vHat) + h.eps!));
  }
};
const refFtrl: RefStep = (row, g, h) => {
  const { z, n } = row.s as { z: number[]; n: number[] };
  for (let j = 0; j < g.length; j++) {
    const nNew = f32(n[j]! + g[j]! ** 2);
    const sigma = (Math.sqrt(nNew) - Math.sqrt(n[j]!)) / h.alpha!;
    z[j] = f32(z[j]! + g[j]! - sigma * row.w[j]!);
    n[j] = nNew;
    const zj = z[j]!;
    row.w[j] = Math.abs(zj) <= h.l1! ? 0 : f32(-(zj - Math.sign(zj) * h.l1!) / ((h.beta! + Math.sqrt(nNew)) / h.alpha! + h.l2!));
  }
};

const cases: { optimizer: string; hyper: Record<string, number>; ref: RefStep; slotInit: Record<string, number> }[] = [
  { optimizer: 'sgd', hyper: { lr: 0.3 }, ref: refSgd, slotInit: {} },
  { optimizer: 'sgd', hyper: { lr: 0.1, weight_decay: 0.05 }, ref: refSgd, slotInit: {} },
  { optimizer: 'adagrad', hyper: { lr: 0.2, eps: 1e-8, initial_accumulator: 0.1 }, ref: refAdagrad, slotInit: { accumulator: 0.1 } },
  { optimizer: 'adagrad', hyper: { lr: 0.05 }, ref: refAdagrad, slotInit: { accumulator: 0 } },
  { optimizer: 'adam', hyper: { lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6 }, ref: refAdam, slotInit: { m: 0, v: 0 } },
  { optimizer: 'ftrl', hyper: { alpha: 0.1, beta: 1, l1: 0.05, l2: 0.01 }, ref: refFtrl, slotInit: { z: 0, n: 0 } },
];

for (const c of cases) {
  test(`${c.optimizer} ${JSON.stringify(c.hyper)} matches the float64 reference over 12 steps (TEST_SEED=${seed})`, () => {
    const r = rng(seed ^ 0x5bd1e995);
    const dim = 7, nkeys = 20;
    const store = new TableStore({ id: 1, name: 't', dim, init: 'uniform', initScale: 0.5, seed: 3n, optimizer: c.optimizer, hyper: c.hyper });
    const h = resolveHyper(getOptimizer(c.optimizer), c.hyper);
    const allKeys = BigUint64Array.from({ length: nkeys }, (_, i) => BigInt(i * 1000 + 1) + (BigInt(i % 3) << 40n));
    const w0 = store.pull(allKeys);
    const ref = new Map<bigint, RefRow>();
    allKeys.forEach((k, i) => ref.set(k, {
      w: Array.from(w0.subarray(i * dim, (i + 1) * dim)),
      s: Object.fromEntries(Object.entries(c.slotInit).map(([n, v]) => [n, new Array<number>(dim).fill(v)])), t: 0,
    }));
    for (let step = 0; step < 12; step++) {
      // A random subset of rows each step, so rows reach different update counts (sparse Adam).
      const keys = BigUint64Array.from(allKeys.filter(() => r() < 0.6));
      const grads = Float32Array.from({ length: keys.length * dim }, () => (r() * 2 - 1) * (r() < 0.1 ? 10 : 1));
      store.apply(keys, grads);
      keys.forEach((k, i) => {
        const row = ref.get(k)!;
        row.t++;
        c.ref(row, Array.from(grads.subarray(i * dim, (i + 1) * dim)), h);
      });
    }
    const got = store.exportRows();
    const names = getOptimizer(c.optimizer).slotNames;
    got.keys.forEach((k, i) => {
      const row = ref.get(k)!;
      close(got.values.subarray(i * dim, (i + 1) * dim), row.w, `${c.optimizer} row ${k}`);
      names.forEach((n, s) => close(got.slots[s]!.subarray(i * dim, (i + 1) * dim), row.s[n]!, `${c.optimizer} slot ${n} of row ${k}`));
      assert.is(got.steps[i], row.t, 'per-row update count');
    });
    assert.ok(new Set(got.steps).size > 2, 'rows ended at different step counts');
  });
}

test('sgd with lr = -1 counts pushes; FTRL with a large l1 gives exact zeros', () => {
  const s = new TableStore({ id: 1, name: 'c', dim: 3, init: 'zeros', initScale: 0, seed: 1n, optimizer: 'sgd', hyper: { lr: -1 } });
  const keys = BigUint64Array.of(5n, 9n);
  for (let i = 0; i < 4; i++) s.apply(keys, new Float32Array(6).fill(1));
  assert.equal(Array.from(s.pull(keys)), [4, 4, 4, 4, 4, 4]);
  const f = new TableStore({ id: 2, name: 'f', dim: 4, init: 'uniform', initScale: 1, seed: 1n, optimizer: 'ftrl', hyper: { l1: 100 } });
  f.apply(keys.subarray(0, 1), Float32Array.of(0.5, -0.5, 1, -1));
  assert.equal(Array.from(f.pull(keys.subarray(0, 1))), [0, 0, 0, 0]);
});

test('registry: names, defaults filled in, unknown and invalid hyperparameters refused', () => {
  assert.ok(['adagrad', 'adam', 'ftrl', 'sgd'].every((n) => optimizerNames().includes(n)));
  assert.equal(getOptimizer('adam').slotNames, ['m', 'v']);
  assert.equal(getOptimizer('adagrad').slotNames, ['accumulator']);
  assert.equal(getOptimizer('ftrl').slotNames, ['z', 'n']);
  assert.is(getOptimizer('sgd').slotCount, 0);
  assert.equal(resolveHyper(getOptimizer('adam'), { lr: 0.5 }), { lr: 0.5, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
  assert.throws(() => getOptimizer('lamb'), /unknown optimizer 'lamb' \(known: .*adagrad.*\)/);
  assert.throws(() => resolveHyper(getOptimizer('sgd'), { learning_rate: 0.1 }), /no hyperparameter 'learning_rate' \(known: lr, weight_decay\)/);
  assert.throws(() => resolveHyper(getOptimizer('sgd'), { lr: NaN }), /lr must be a finite number/);
  assert.throws(() => resolveHyper(getOptimizer('adam'), { beta1: 1 }), /beta1 must be in \[0, 1\)/);
  assert.throws(() => resolveHyper(getOptimizer('adagrad'), { initial_accumulator: -1 }), /initial_accumulator must be >= 0/);
  assert.throws(() => resolveHyper(getOptimizer('ftrl'), { alpha: 0 }), /alpha must be > 0/);
});

const scaledSign: OptimizerDef = {
  name: 'test-sign', slotCount: 1, slotNames: ['last'], defaults: { lr: 0.5 },
  initialSlotValues: () => [7],
  update(w, wOff, g, gOff, dim, slots, slotOff, step, h) {
    for (let j = 0; j < dim; j++) { w[wOff + j] -= h.lr! * Math.sign(g[gOff + j]!); slots[0]![slotOff + j] = step; }
  },
};

test('registerOptimizer: validated shape, a usable table, no silent replacement', () => {
  const o = registerOptimizer(scaledSign);
  assert.is(registerOptimizer(scaledSign), o, 'registering the same definition again is a no-op');
  const s = new TableStore({ id: 1, name: 't', dim: 2, init: 'zeros', initScale: 0, seed: 1n, optimizer: 'test-sign', hyper: {} });
  const k = BigUint64Array.of(1n, 2n);
  s.pull(k);
  assert.equal(Array.from(s.exportRows().slots[0]!), [7, 7, 7, 7], 'slots start at initialSlotValues');
  s.apply(k, Float32Array.of(3, -3, 0, 1));
  s.apply(k.subarray(0, 1), Float32Array.of(1, 1));
  const e = s.exportRows();
  assert.equal(Array.from(e.values), [-1, 0, 0, -0.5]);
  assert.equal(Array.from(e.slots[0]!), [2, 2, 1, 1], 'step is the row update count after the update');
  assert.throws(() => registerOptimizer({ ...scaledSign, update: () => {} }), /already registered/);
  assert.throws(() => registerOptimizer({ ...getOptimizer('sgd'), update: () => {} }), /built in/);
  const bad: [unknown, RegExp][] = [
    [null, /expected an object/],
    [{ name: '', slotCount: 0, defaults: {}, update() {} }, /name must be/],
    [{ name: 'x1', slotCount: -1, defaults: {}, update() {} }, /slotCount must be an integer/],
    [{ name: 'x2', slotCount: 0, defaults: { lr: 'a' }, update() {} }, /default lr must be a finite number/],
    [{ name: 'x3', slotCount: 0, defaults: {} }, /update must be a function/],
    [{ name: 'x4', slotCount: 2, slotNames: ['a'], defaults: {}, update() {} }, /slotNames must be 2 distinct names/],
    [{ name: 'x5', slotCount: 1, slotNames: ['a.b'], defaults: {}, update() {} }, /slotNames/],
    [{ name: 'x6', slotCount: 1, defaults: {}, update() { throw new Error('boom'); } }, /update failed on a test row: boom/],
    [{ name: 'x7', slotCount: 1, defaults: {}, initialSlotValues: () => [1, 2], update() {} }, /initialSlotValues must return 1 finite numbers/],
  ];
  for (const [def, re] of bad) assert.throws(() => registerOptimizer(def as OptimizerDef), re);
  assert.not.ok(optimizerNames().some((n) => /^x\d$/.test(n)), 'nothing invalid got registered');
});

test('loadOptimizerModule: default export (.mjs), named `optimizer` (.ts), clear errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hybridps-opt-'));
  try {
    writeFileSync(join(dir, 'momentum.mjs'), `
      export default {
        name: 'momentum-test', slotCount: 1, slotNames: ['velocity'], defaults: { lr: 0.1, mu: 0.9 },
        update(w, wo, g, go, dim, slots, so, step, h) {
          const v = slots[0];
          for (let j = 0; j < dim; j++) { v[so + j] = h.mu * v[so + j] + g[go + j]; w[wo + j] -= h.lr * v[so + j]; }
        },
      };`);
    writeFileSync(join(dir, 'half.ts'), `
      export const optimizer = {
        name: 'half-test', slotCount: 0, defaults: {},
        update(w: Float32Array, wo: number, g: Float32Array, go: number, dim: number): void {
          for (let j = 0; j < dim; j++) w[wo + j] = (w[wo + j]! + g[go + j]!) / 2;
        },
      };`);
    writeFileSync(join(dir, 'empty.mjs'), 'export const nothing = 1;\n');
    writeFileSync(join(dir, 'broken.mjs'), 'export default { name: "broken-test", slotCount: 0, defaults: {} };\n');
    const m = await loadOptimizerModule(join(dir, 'momentum.mjs'));
    assert.is(m.name, 'momentum-test');
    assert.is(await loadOptimizerModule(join(dir, 'momentum.mjs')), m, 'loading twice is fine');
    const s = new TableStore({ id: 1, name: 't', dim: 1, init: 'zeros', initScale: 0, seed: 1n, optimizer: 'momentum-test', hyper: { mu: 0.5 } });
    const k = BigUint64Array.of(3n);
    s.apply(k, Float32Array.of(1)); // v = 1, w = -0.1
    s.apply(k, Float32Array.of(1)); // v = 1.5, w = -0.25
    close(s.pull(k), [-0.25], 'momentum');
    assert.equal(s.slotNames, ['velocity']);
    const h = await loadOptimizerModule(join(dir, 'half.ts'));
    assert.is(h.name, 'half-test');
    await assertRejects(loadOptimizerModule(join(dir, 'empty.mjs')), /neither a default export nor an export named 'optimizer' \(exports: nothing\)/);
    await assertRejects(loadOptimizerModule(join(dir, 'broken.mjs')), /broken\.mjs: optimizer 'broken-test': update must be a function/);
    await assertRejects(loadOptimizerModule(join(dir, 'missing.mjs')), /cannot import optimizer module .*missing\.mjs/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function assertRejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`expected a rejection matching ${re}`);
}

test.run();
