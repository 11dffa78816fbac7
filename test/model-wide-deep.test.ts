// samples/wide-deep: its one kernel (wd_add) and the whole model's forward + backward against a
// float64 CPU Wide & Deep on fresh random inputs, with NaN-poisoned outputs and gradient buffers,
// at shapes that are no multiple of a tile (B = 13 and 131, a 40-feature wide bag, hidden 9 -> 4).
// Tolerance: 1e-5 absolute + 1e-4 relative (f32 sums of at most a few hundred terms).
import * as assert from 'uvu/assert';
import { gpuSuite, finishGpuTests, expectClose, upload, output, download } from './helpers/gpu.ts';
import { Dispatcher } from '../src/gpu/dispatch.ts';
import * as ref from './helpers/reference.ts';
import { ModelRunner } from '../src/model/model-runner.ts';
import { prepareTable } from '../src/model/batch-prep.ts';
import { model, wideDeepSpec, wideBag, WD_SHADERS, type WideDeepConfig } from '../samples/wide-deep/model.ts';

const s = gpuSuite('wide & deep sample');
const tol = (w: ArrayLike<number>) => (i: number) => 1e-5 + 1e-4 * Math.abs(w[i]!);

s('wd_add: logits = wide + deep', async (ctx) => {
  const B = 131;
  const a = new Float32Array(B).map(() => ctx.rand() * 4 - 2), b = new Float32Array(B).map(() => ctx.rand() * 4 - 2);
  const runner = await ModelRunner.create(ctx.gpu, wideDeepSpec({ ...model.defaults, tables: 1, dim: 4, hidden: [4], wideRows: 7, crosses: [] }, { optimizer: 'sgd', hyper: { lr: 0.1 }, consistency: 'bsp', staleness: 0 }));
  try {
    assert.ok(runner.registry.path('wd_add').startsWith(WD_SHADERS), 'wd_add comes from the sample');
    const out = output(ctx.gpu, B);
    ctx.gpu.device.pushErrorScope('validation');
    await new Dispatcher(ctx.gpu, runner.registry).run('wd_add', { B }, [upload(ctx.gpu, a), upload(ctx.gpu, b), out]);
    const err = await ctx.gpu.device.popErrorScope();
    assert.not.ok(err, err?.message);
    expectClose(ctx, await download(ctx.gpu, out, B), Float64Array.from(a, (v, i) => v + b[i]!), 1e-6, 'wd_add');
  } finally {
    runner.destroy();
  }
});

s('forward+backward matches a float64 Wide & Deep', async (ctx) => {
  const c: WideDeepConfig = { ...model.defaults, tables: 3, dim: 4, hidden: [9, 4], rowsPerTable: 11, wideRows: 97, crosses: [[0, 1]], denseBuckets: 4 };
  const B = 13, T = c.tables, D = c.dim, n = wideBag(c);
  assert.is(n, 40);
  const runner = await ModelRunner.create(ctx.gpu, model.spec(c, { optimizer: 'adagrad', hyper: { lr: 0.1 }, consistency: 'bsp', staleness: 0 }));
  try {
    const dense = new Float32Array(runner.denseLength).map(() => ctx.rand() - 0.5);
    runner.setDense(dense);
    const records = {
      size: B, denseWidth: 13, catWidth: 26,
      labels: new Float32Array(B).map(() => (ctx.rand() < 0.4 ? 1 : 0)),
      dense: new Float32Array(B * 13).map(() => ctx.rand() * 3),
      cats: new Uint32Array(B * 26).map(() => Math.floor(ctx.rand() * c.rowsPerTable)),
    };
    const mb = model.toBatch(records, c);
    const tables = mb.tables.map((t, i) => {
      const prep = prepareTable(t, B), dim = i < T ? D : 1;
      return { prep, rows: new Float32Array(prep.unique.length * dim).map(() => ctx.rand() - 0.5) };
    });
    const got = await runner.step({ B, inputs: mb.inputs, tables }, { poison: true });

    // float64 reference
    const at = (name: string) => runner.denseLayout().find((p) => p.name === name)!;
    const P = (name: string) => dense.subarray(at(name).offset, at(name).offset + at(name).size);
    const emb = new Float64Array(B * T * D);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let d = 0; d < D; d++) emb[b * T * D + t * D + d] = tables[t]!.rows[tables[t]!.prep.inverse[b]! * D + d]!;
    const wt = tables[T]!, wide = new Float64Array(B);
    for (let b = 0; b < B; b++) for (let k = b * n; k < (b + 1) * n; k++) wide[b] += wt.rows[wt.prep.inverse[k]!]!;
    const widths = [T * D, ...c.hidden, 1], xs: Float64Array[] = [emb];
    for (let l = 0; l + 1 < widths.length; l++) xs.push(ref.linearFwd(xs[l]!, P(`deep.${l}.weight`), P(`deep.${l}.bias`), B, widths[l + 1]!, widths[l]!, l + 2 < widths.length));
    const logits = xs[xs.length - 1]!.map((v, b) => v + wide[b]!);
    const { loss, dlogits } = ref.bceFwdBwd(logits, records.labels, B);
    const want = new Float64Array(runner.denseLength);
    let dy: Float64Array = dlogits;
    for (let l = widths.length - 2; l >= 0; l--) {
      const N = widths[l + 1]!, K = widths[l]!, g = ref.maskedGrad(dy, xs[l + 1]!, l + 2 < widths.length);
      want.set(ref.linearBwdWeight(g, xs[l]!, B, N, K), at(`deep.${l}.weight`).offset);
      want.set(ref.biasGrad(g, B, N), at(`deep.${l}.bias`).offset);
      dy = ref.linearBwdInput(g, P(`deep.${l}.weight`), B, N, K);
    }
    const wantRows = tables.map((t, i) => {
      const dim = i < T ? D : 1, g = new Float64Array(t.prep.unique.length * dim);
      if (i < T) for (let b = 0; b < B; b++) for (let d = 0; d < D; d++) g[t.prep.inverse[b]! * D + d] += dy[b * T * D + i * D + d]!;
      else for (let b = 0; b < B; b++) for (let k = b * n; k < (b + 1) * n; k++) g[t.prep.inverse[k]!] += dlogits[b]!;
      return g;
    });
    expectClose(ctx, [got.loss], [loss.reduce((a, v) => a + v, 0) / B], 1e-5, 'loss');
    expectClose(ctx, got.denseGrads, want, tol(want), 'dense grads');
    wantRows.forEach((w, i) => expectClose(ctx, got.tableGrads[i]!, w, tol(w), `table ${i} row grads`));
    const scores = await runner.predict({ B, inputs: mb.inputs, tables });
    expectClose(ctx, scores, logits, tol(logits), 'predicted logits');
  } finally {
    runner.destroy();
  }
});

s.run();
finishGpuTests();
