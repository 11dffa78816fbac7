// Whole DLRM forward + backward through ModelRunner (one submit) vs the float64 CPU composition,
// on fresh random inputs with every output, activation and gradient buffer NaN-poisoned first.
import * as assert from 'uvu/assert';
import { gpuSuite, finishGpuTests, expectClose } from './helpers/gpu.ts';
import { ModelRunner } from '../src/model/model-runner.ts';
import { dlrmSpec, type DlrmConfig } from '../src/model/dlrm.ts';
import { prepareTable } from '../src/model/batch-prep.ts';
import { dlrmCpuStep } from './model-dlrm-cpu.ts';

const s = gpuSuite('DLRM via ModelRunner');

// Tiny shapes (lavapipe is slow) that still cover: two bottom layers, two top layers, ReLU masks,
// repeated ids (segment-sum over several occurrences), tables of different unique counts.
const tiny: DlrmConfig = { numDense: 5, numTables: 3, dim: 4, bottom: [5, 8, 4], top: [6, 1], rowsPerTable: 7 };

// f32 GEMMs of K <= 16 terms of O(1) values and a 3-deep MLP: absolute 2e-5 + relative 1e-4.
const tol = (want: ArrayLike<number>) => (i: number) => 2e-5 + 1e-4 * Math.abs(want[i]);

s('forward+backward matches the float64 reference (two batches, buffers reused)', async (ctx) => {
  const spec = dlrmSpec(tiny);
  const runner = await ModelRunner.create(ctx.gpu, spec, { seed: 3 });
  try {
    const dense = runner.denseLayout();
    assert.is(dense.length, 8);
    const params = new Float32Array(runner.denseLength).map(() => (ctx.rand() * 2 - 1) * 0.7);
    runner.setDense(params);
    for (const B of [9, 9, 5]) {
      const x = new Float32Array(B * tiny.numDense).map(() => ctx.rand() * 2 - 1);
      const labels = new Float32Array(B).map(() => (ctx.rand() < 0.5 ? 0 : 1));
      const tables = Array.from({ length: tiny.numTables }, () => {
        const prep = prepareTable({ ids: Float64Array.from({ length: B }, () => Math.floor(ctx.rand() * tiny.rowsPerTable)) }, B);
        const rows = new Float32Array(prep.unique.length * tiny.dim).map(() => ctx.rand() * 2 - 1);
        return { prep, rows };
      });
      const got = await runner.step({ B, inputs: { dense_x: x, labels }, tables }, { poison: true });
      const want = dlrmCpuStep(tiny, params, x, labels, B, tables);
      expectClose(ctx, [got.loss], [want.loss], 1e-5 + 1e-5 * Math.abs(want.loss), `loss B=${B}`);
      expectClose(ctx, got.denseGrads, want.denseGrads, tol(want.denseGrads), `dense grads B=${B}`);
      tables.forEach((_, i) => expectClose(ctx, got.tableGrads[i], want.tableGrads[i], tol(want.tableGrads[i]), `table ${i} grads B=${B}`));
      // Forward only (evaluation): the logits, with the output buffer poisoned first.
      const logits = await runner.predict({ B, inputs: { dense_x: x, labels: new Float32Array(B) }, tables }, { poison: true });
      expectClose(ctx, logits, want.logits, tol(want.logits), `predicted logits B=${B}`);
      for (const v of Object.values(got.ms)) assert.ok(v >= 0);
    }
    assert.equal(Array.from(await runner.readDense()), Array.from(params), 'dense params round-trip');
  } finally {
    runner.destroy();
  }
});

// A worker's gradient scale (local batch / global batch) through RunnerStepOptions.gradScale:
// on the GPU in the DLRM spec (segment_sum's and split_sum's writes), by the runner where the spec
// does not (gradSplits = 1: no split_sum), and folded into the fused dense update either way.
for (const [label, opts] of [['all-tables kernels', {}], ['per-table kernels', { perTableKernels: true }], ['gradSplits = 1 (the runner scales dense)', { gradSplits: 1 }]] as const) {
  s(`gradScale 0.3 scales the row and dense gradients and the fused update (${label})`, async (ctx) => {
    const spec = dlrmSpec(tiny, opts);
    assert.equal(spec.scalesGrads, { rows: true, dense: !('gradSplits' in opts) });
    const runner = await ModelRunner.create(ctx.gpu, spec);
    try {
      const params = new Float32Array(runner.denseLength).map(() => (ctx.rand() * 2 - 1) * 0.7);
      runner.setDense(params);
      const B = 11, scale = 0.3, lr = 0.5;
      const x = new Float32Array(B * tiny.numDense).map(() => ctx.rand() * 2 - 1);
      const labels = new Float32Array(B).map(() => (ctx.rand() < 0.5 ? 0 : 1));
      const tables = Array.from({ length: tiny.numTables }, () => {
        const prep = prepareTable({ ids: Float64Array.from({ length: B }, () => Math.floor(ctx.rand() * tiny.rowsPerTable)) }, B);
        return { prep, rows: new Float32Array(prep.unique.length * tiny.dim).map(() => ctx.rand() * 2 - 1) };
      });
      const got = await runner.step({ B, inputs: { dense_x: x, labels }, tables }, { poison: true, gradScale: scale, denseUpdate: { kind: 'sgd', lr } });
      const want = dlrmCpuStep(tiny, params, x, labels, B, tables);
      expectClose(ctx, [got.loss], [want.loss], 1e-5 + 1e-5 * Math.abs(want.loss), 'the loss is not scaled');
      const dense = want.denseGrads.map((v) => v * scale);
      expectClose(ctx, got.denseGrads, dense, tol(dense), 'dense grads x 0.3');
      tables.forEach((_, i) => {
        const rows = want.tableGrads[i]!.map((v) => v * scale);
        expectClose(ctx, got.tableGrads[i]!, rows, tol(rows), `table ${i} grads x 0.3`);
      });
      const after = Float64Array.from(params, (p, i) => p - lr * dense[i]!);
      expectClose(ctx, await runner.readDense(), after, (i) => 1e-6 + lr * tol(dense)(i), 'the fused sgd step used the scaled gradient once');
    } finally {
      runner.destroy();
    }
  });
}

s('the small preset runs and gives finite results', async (ctx) => {
  const { DLRM_PRESETS } = await import('../src/model/dlrm.ts');
  const c = DLRM_PRESETS.small;
  const runner = await ModelRunner.create(ctx.gpu, dlrmSpec(c));
  try {
    const B = 16;
    const tables = Array.from({ length: c.numTables }, () => {
      const prep = prepareTable({ ids: Float64Array.from({ length: B }, () => Math.floor(ctx.rand() * 50)) }, B);
      return { prep, rows: new Float32Array(prep.unique.length * c.dim).map(() => ctx.rand() * 0.1 - 0.05) };
    });
    const x = new Float32Array(B * c.numDense).map(() => ctx.rand());
    const labels = new Float32Array(B).map(() => (ctx.rand() < 0.3 ? 1 : 0));
    const got = await runner.step({ B, inputs: { dense_x: x, labels }, tables }, { poison: true });
    assert.ok(Number.isFinite(got.loss) && got.loss > 0, `loss ${got.loss}`);
    assert.ok(got.denseGrads.every(Number.isFinite), 'dense grads finite');
    assert.ok(got.tableGrads.every((g) => g.every(Number.isFinite)), 'table grads finite');
  } finally {
    runner.destroy();
  }
});

s('the gpu preset validates against the kernel headers and has the expected dense size', async (ctx) => {
  const { DLRM_PRESETS } = await import('../src/model/dlrm.ts');
  const runner = await ModelRunner.create(ctx.gpu, dlrmSpec(DLRM_PRESETS.gpu));
  try {
    // bottom 13-512-256-64, top (64 + 27*26/2 = 415)-512-256-1, weights + biases
    const want = (13 * 512 + 512) + (512 * 256 + 256) + (256 * 64 + 64) + (415 * 512 + 512) + (512 * 256 + 256) + (256 + 1);
    assert.is(runner.denseLength, want);
  } finally {
    runner.destroy();
  }
});

s('a spec binding the wrong number of buffers is refused with the kernel named', async (ctx) => {
  const spec = dlrmSpec(tiny);
  spec.forward[0] = { ...spec.forward[0], bind: spec.forward[0].bind.slice(0, 3) };
  try {
    await ModelRunner.create(ctx.gpu, spec);
    assert.unreachable('should have thrown');
  } catch (e) {
    assert.match((e as Error).message, /linear_fwd/);
  }
});

s('a kernel in a directory before the repo shaders replaces the repo one (swap without editing src/)', async (ctx) => {
  const { mkdtempSync, copyFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { REPO_SHADERS } = await import('../src/model/dlrm.ts');
  const dir = mkdtempSync(join(tmpdir(), 'hps-kernels-'));
  try {
    copyFileSync(join(REPO_SHADERS, 'interaction_fwd.wgsl'), join(dir, 'interaction_fwd.wgsl'));
    const runner = await ModelRunner.create(ctx.gpu, dlrmSpec(tiny, { kernelDirs: [dir] }));
    try {
      assert.is(runner.registry.path('interaction_fwd'), join(dir, 'interaction_fwd.wgsl'));
      assert.is(runner.registry.path('linear_fwd'), join(REPO_SHADERS, 'linear_fwd.wgsl'));
      const B = 3;
      const tables = Array.from({ length: tiny.numTables }, () => {
        const prep = prepareTable({ ids: Float64Array.from({ length: B }, (_, i) => i) }, B);
        return { prep, rows: new Float32Array(B * tiny.dim).map(() => ctx.rand() - 0.5) };
      });
      const x = new Float32Array(B * tiny.numDense).map(() => ctx.rand());
      const labels = Float32Array.of(0, 1, 1);
      const got = await runner.step({ B, inputs: { dense_x: x, labels }, tables }, { poison: true });
      const want = dlrmCpuStep(tiny, await runner.readDense(), x, labels, B, tables);
      expectClose(ctx, [got.loss], [want.loss], 1e-5, 'loss with the swapped kernel');
    } finally {
      runner.destroy();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
finishGpuTests();
