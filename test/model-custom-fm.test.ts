// samples/custom-fm: a model declared outside src/ with its own WGSL kernels. Its forward and
// backward match a float64 FM on fresh random inputs (NaN-poisoned buffers), and it trains through
// the same WorkerStep against real parameter servers until the loss falls.
import * as assert from 'uvu/assert';
import { gpuSuite, finishGpuTests, expectClose } from './helpers/gpu.ts';
import { startCluster, allJoined } from './helpers/cluster.ts';
import * as ref from './helpers/reference.ts';
import { ModelRunner } from '../src/model/model-runner.ts';
import { prepareTable } from '../src/model/batch-prep.ts';
import { WorkerStep, psTableSpecs } from '../src/worker/worker-step.ts';
import { fmSpec, syntheticFm, FM_SHADERS, type FmConfig } from '../samples/custom-fm/model.ts';

const s = gpuSuite('custom FM sample');

s('fm kernels come from the sample directory', async (ctx) => {
  const runner = await ModelRunner.create(ctx.gpu, fmSpec({ fields: 2, k: 2, rowsPerField: 5 }));
  try {
    assert.ok(runner.registry.path('fm_fwd').startsWith(FM_SHADERS));
    assert.ok(!runner.registry.path('segment_sum').startsWith(FM_SHADERS));
  } finally {
    runner.destroy();
  }
});

// D = 0: the FM alone (bias w0); 13: the Criteo dense columns (linear_fwd_n1's scalar path, K % 4
// != 0); 8: its vec4 path. B = 7 and F = 3 are multiples of no tile.
for (const D of [0, 13, 8]) {
  s(`forward+backward matches a float64 FM (dense linear term over ${D} features)`, async (ctx) => {
    const c: FmConfig = { fields: 3, k: 3, rowsPerField: 6, dense: D };
    const W = c.k + 1, F = c.fields, B = 7;
    const runner = await ModelRunner.create(ctx.gpu, fmSpec(c));
    try {
      // Dense vector in declaration order: wd [1, D] then w0 (w0 alone when D = 0).
      const wd = Float64Array.from({ length: D }, () => ctx.rand() - 0.5);
      const w0 = ctx.rand() - 0.5;
      runner.setDense(Float32Array.from([...wd, w0]));
      const x = new Float32Array(B * D).map(() => ctx.rand() * 4 - 1);
      const labels = new Float32Array(B).map(() => (ctx.rand() < 0.5 ? 0 : 1));
      const tables = Array.from({ length: F }, () => {
        const prep = prepareTable({ ids: Float64Array.from({ length: B }, () => Math.floor(ctx.rand() * c.rowsPerField)) }, B);
        return { prep, rows: new Float32Array(prep.unique.length * W).map(() => ctx.rand() * 2 - 1) };
      });
      const inputs: Record<string, Float32Array> = D > 0 ? { labels, dense_x: x } : { labels };
      const got = await runner.step({ B, inputs, tables }, { poison: true });

      // float64 FM plus the linear term
      const e = (b: number, f: number, d: number) => tables[f].rows[tables[f].prep.inverse[b] * W + d];
      const logits = new Float64Array(B);
      for (let b = 0; b < B; b++) {
        let v = w0;
        for (let j = 0; j < D; j++) v += wd[j] * x[b * D + j];
        for (let f = 0; f < F; f++) v += e(b, f, 0);
        for (let d = 1; d < W; d++) {
          let sum = 0, sq = 0;
          for (let f = 0; f < F; f++) { sum += e(b, f, d); sq += e(b, f, d) ** 2; }
          v += 0.5 * (sum * sum - sq);
        }
        logits[b] = v;
      }
      const { loss, dlogits } = ref.bceFwdBwd(logits, labels, B);
      const wantGrads = tables.map((t) => new Float64Array(t.prep.unique.length * W));
      for (let b = 0; b < B; b++) {
        for (let f = 0; f < F; f++) {
          const u = tables[f].prep.inverse[b];
          wantGrads[f][u * W] += dlogits[b];
          for (let d = 1; d < W; d++) {
            let sum = 0;
            for (let j = 0; j < F; j++) sum += e(b, j, d);
            wantGrads[f][u * W + d] += dlogits[b] * (sum - e(b, f, d));
          }
        }
      }
      const wantDense = new Float64Array(D + 1);
      for (let b = 0; b < B; b++) {
        for (let j = 0; j < D; j++) wantDense[j] += dlogits[b] * x[b * D + j];
        wantDense[D] += dlogits[b];
      }
      const tol = (w: ArrayLike<number>) => (i: number) => 1e-5 + 1e-4 * Math.abs(w[i]);
      expectClose(ctx, [got.loss], [loss.reduce((a, v) => a + v, 0) / B], 1e-5, 'loss');
      expectClose(ctx, got.denseGrads, wantDense, tol(wantDense), 'dense grads (wd, w0)');
      tables.forEach((_, f) => expectClose(ctx, got.tableGrads[f], wantGrads[f], tol(wantGrads[f]), `field ${f} grads`));
      // predict() runs the forward calls only: the same logits, on NaN-poisoned buffers.
      const pred = await runner.predict({ B, inputs, tables }, { poison: true });
      expectClose(ctx, pred, logits, tol(logits), 'predicted logits');
    } finally {
      runner.destroy();
    }
  });
}

s('trains through WorkerStep on real servers: the loss falls', async (ctx) => {
  const c: FmConfig = { fields: 4, k: 4, rowsPerField: 20, lr: 0.2 };
  const cluster = await startCluster({ servers: 2 });
  const runner = await ModelRunner.create(ctx.gpu, fmSpec(c));
  try {
    const client = await cluster.client('fm-worker');
    await allJoined([client], 1);
    const { specs, tableIds } = psTableSpecs(runner.spec, 1, 3n);
    await client.declareTables(specs);
    const B = 64;
    const step = new WorkerStep({ client, runner, tableIds, globalBatch: B, dense: { mode: 'local', optimizer: { kind: 'sgd', lr: 0.1 } } });
    const data = syntheticFm(c, 9);
    const losses: number[] = [];
    for (let i = 0; i < 40; i++) losses.push((await step.run(data(B))).loss);
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    const first = mean(losses.slice(0, 5)), last = mean(losses.slice(-5));
    assert.ok(losses.every(Number.isFinite), 'finite losses');
    assert.ok(last < first - 0.05, `loss should fall: first 5 steps ${first.toFixed(4)}, last 5 ${last.toFixed(4)}`);
  } finally {
    runner.destroy();
    await cluster.close();
  }
});

s.run();
finishGpuTests();
