// What one training step costs in GPU API traffic, counted by a wrapper around the REAL device
// (src/gpu/counting-device.ts): one submit, one CPU wait, at most 30 dispatches and 4 writeBuffer
// calls, for a DLRM with the gpu preset's structure (26 tables, 3 + 3 layers, a one-output head)
// at small widths. Counts do not depend on speed. Also: the row gradients are views of mapped
// memory that stay valid until release() or the step after next, and the dense update gives the
// same parameters whether it runs inside the step or deferred into the next GPU work.
import * as assert from 'uvu/assert';
import { gpuSuite, finishGpuTests } from './helpers/gpu.ts';
import { countingGpu } from '../src/gpu/counting-device.ts';
import { ModelRunner, type DenseOptimizer, type StepInputs } from '../src/model/model-runner.ts';
import { dlrmSpec, type DlrmConfig } from '../src/model/dlrm.ts';
import { prepareTable } from '../src/model/batch-prep.ts';

const s = gpuSuite('one step: submits, waits, dispatches, uploads');

// The gpu preset's graph (26 tables, bottom 13-512-256-64, top 512-256-1) at small widths.
const shaped: DlrmConfig = { numDense: 13, numTables: 26, dim: 8, bottom: [13, 32, 16, 8], top: [16, 8, 1], rowsPerTable: 50 };

function batch(r: () => number, c: DlrmConfig, B: number): StepInputs {
  return {
    B,
    inputs: {
      dense_x: new Float32Array(B * c.numDense).map(() => r() * 2 - 1),
      labels: new Float32Array(B).map(() => (r() < 0.5 ? 0 : 1)),
    },
    tables: Array.from({ length: c.numTables }, () => {
      const prep = prepareTable({ ids: Float64Array.from({ length: B }, () => Math.floor(r() * c.rowsPerTable)) }, B);
      return { prep, rows: new Float32Array(prep.unique.length * c.dim).map(() => r() * 0.2 - 0.1) };
    }),
  };
}

s('a step is one submit and one CPU wait, <= 30 dispatches, <= 4 writeBuffer calls (deferred dense update included)', async (ctx) => {
  const c = countingGpu(ctx.gpu);
  const runner = await ModelRunner.create(c.gpu, dlrmSpec(shaped), { seed: 2 });
  try {
    const sgd: DenseOptimizer = { kind: 'sgd', lr: 0.1 };
    const B = 40;
    let r = await runner.step(batch(ctx.rand, shaped, B)); // first step: buffers and bind groups
    await runner.applyDenseUpdate(r.denseGrads, sgd);
    r = await runner.step(batch(ctx.rand, shaped, B));
    await runner.applyDenseUpdate(r.denseGrads, sgd); // staged for the next step: no GPU call yet
    c.reset();
    r = await runner.step(batch(ctx.rand, shaped, B));
    const n = { ...c.counts };
    // forward 8 (6 linear, 1 embedding_bag_tables, 1 interaction), loss 2, backward 13
    // (5 bwd_weight, 1 bwd_n1, 4 bwd_input, interaction, segment_sum_tables, split_sum), update 1.
    assert.is(n.submits, 1, 'submits');
    assert.is(n.cpuWaits, 1, 'CPU waits');
    assert.is(n.dispatches, 24, 'dispatches');
    assert.ok(n.dispatches <= 30);
    assert.is(n.writeBuffers, 3, 'writeBuffer calls: inputs, staged dense gradient, dispatch params');
    assert.is(n.readbackCopies, 3, 'loss, dense gradient, all row gradients');
    assert.is(n.bindGroups, 0, 'bind groups are reused');
    const rowFloats = r.tableGrads.reduce((a, g) => a + g.length, 0);
    assert.ok(n.bytesDown >= 4 + runner.denseLength * 4 + rowFloats * 4, `bytes down ${n.bytesDown}`);
    assert.ok(n.bytesUp >= rowFloats * 4, `bytes up ${n.bytesUp}`);
    assert.ok(Number.isFinite(r.loss));

    // The dense update fused into the step itself: still one submit, one wait, 3 -> 2 uploads.
    c.reset();
    await runner.step(batch(ctx.rand, shaped, B), { denseUpdate: sgd });
    assert.is(c.counts.submits, 1);
    assert.is(c.counts.cpuWaits, 1);
    assert.is(c.counts.writeBuffers, 2);
    assert.is(c.counts.dispatches, 24);
  } finally {
    runner.destroy();
  }
});

s('the per-table graph is 2 x 26 dispatches where the all-tables kernels are 2', async (ctx) => {
  const c = countingGpu(ctx.gpu);
  const runner = await ModelRunner.create(c.gpu, dlrmSpec(shaped, { perTableKernels: true }), { seed: 2 });
  try {
    await runner.step(batch(ctx.rand, shaped, 20));
    c.reset();
    await runner.step(batch(ctx.rand, shaped, 20));
    assert.is(c.counts.dispatches, 23 + 2 * 25);
    assert.is(c.counts.submits, 1);
    assert.is(c.counts.cpuWaits, 1);
  } finally {
    runner.destroy();
  }
});

s('row gradients are views of mapped memory: valid until release() or the step after next', async (ctx) => {
  const tiny: DlrmConfig = { numDense: 3, numTables: 2, dim: 4, bottom: [3, 8, 4], top: [4, 1], rowsPerTable: 9 };
  const runner = await ModelRunner.create(ctx.gpu, dlrmSpec(tiny));
  try {
    const r1 = await runner.step(batch(ctx.rand, tiny, 7));
    const keep = r1.tableGrads.map((g) => Float32Array.from(g));
    const r2 = await runner.step(batch(ctx.rand, tiny, 7));
    assert.ok(r1.tableGrads.every((g, i) => g.length > 0 && g.every((v, j) => Object.is(v, keep[i]![j]))), 'step t views intact while step t+1 ran');
    const r3 = await runner.step(batch(ctx.rand, tiny, 7));
    assert.ok(r1.tableGrads.every((g) => g.length === 0), 'step t views expire when step t+2 starts');
    assert.ok(r2.tableGrads.every((g) => g.length > 0));
    r3.release();
    assert.ok(r3.tableGrads.every((g) => g.length === 0), 'release() unmaps');
    r3.release(); // idempotent
    r2.release();
    await runner.step(batch(ctx.rand, tiny, 7)); // a released slot is reused without trouble
  } finally {
    runner.destroy();
  }
});

s('a dense update inside the step equals the deferred one (SGD and Adam), bit for bit', async (ctx) => {
  const tiny: DlrmConfig = { numDense: 3, numTables: 2, dim: 4, bottom: [3, 8, 4], top: [6, 1], rowsPerTable: 9 };
  for (const opt of [{ kind: 'sgd', lr: 0.3, gradScale: 0.5 }, { kind: 'adam', lr: 0.01 }] as DenseOptimizer[]) {
    const fused = await ModelRunner.create(ctx.gpu, dlrmSpec(tiny), { seed: 4 });
    const deferred = await ModelRunner.create(ctx.gpu, dlrmSpec(tiny), { seed: 4 });
    try {
      for (let step = 0; step < 3; step++) {
        const b = batch(ctx.rand, tiny, 6);
        const a = await fused.step(b, { denseUpdate: opt });
        const r = await deferred.step(b);
        assert.is(a.loss, r.loss, `loss step ${step}`);
        await deferred.applyDenseUpdate(r.denseGrads, opt);
      }
      assert.equal(Array.from(await fused.readDense()), Array.from(await deferred.readDense()), `${opt.kind}: same parameters`);
      const sa = await fused.readOptimizerState(), sb = await deferred.readOptimizerState();
      assert.is(sa.adamStep, sb.adamStep);
      for (const k of Object.keys(sa.slots)) assert.equal(Array.from(sa.slots[k]!), Array.from(sb.slots[k]!), `${opt.kind} ${k}`);
    } finally {
      fused.destroy();
      deferred.destroy();
    }
  }
});

s.run();
finishGpuTests();
