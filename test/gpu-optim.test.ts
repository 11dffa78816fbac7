// Dense optimizer kernels vs float64 references over flat f32 buffers: sgd_update,
// adagrad_update, adam_update (Adam and AdamW). Tolerance per element: f32 rounding of the
// parameter (1e-6 * |w|) plus 1e-5 * lr for the update term (a ratio of O(1) quantities).
import { gpuSuite, finishGpuTests, upload, download, runKernel, expectClose } from './helpers/gpu.ts';
import * as ref from './helpers/reference.ts';

const SIZES = [1, 1000, 100_003];
const tolFor = (param: ArrayLike<number>, lr: number) => (i: number) => 1e-6 * Math.abs(param[i]) + 1e-5 * lr + 1e-12;

const sgd = gpuSuite('sgd_update');
for (const n of SIZES) {
  sgd(`n=${n}, with weight decay and grad scale`, async (ctx) => {
    const w = ref.randF32(ctx.rand, n), g = ref.randF32(ctx.rand, n);
    const h = { lr: 0.05, weightDecay: 0.01, gradScale: 0.5 };
    const pb = upload(ctx.gpu, w);
    await runKernel(ctx, 'sgd_update', { n, ...h }, [pb, upload(ctx.gpu, g)]);
    expectClose(ctx, await download(ctx.gpu, pb, n), ref.sgdUpdate(w, g, h), tolFor(w, h.lr), `sgd ${n}`);
  });
}
sgd.run();

const adagrad = gpuSuite('adagrad_update');
for (const n of SIZES) {
  adagrad(`n=${n}, default eps, then a second step`, async (ctx) => {
    const w = ref.randF32(ctx.rand, n), g1 = ref.randF32(ctx.rand, n), g2 = ref.randF32(ctx.rand, n);
    const acc0 = ref.randF32(ctx.rand, n, 0, 0.1);
    const h = { lr: 0.1, weightDecay: 1e-4 };
    const pb = upload(ctx.gpu, w), ab = upload(ctx.gpu, acc0);
    await runKernel(ctx, 'adagrad_update', { n, ...h }, [pb, upload(ctx.gpu, g1), ab]);
    await runKernel(ctx, 'adagrad_update', { n, ...h }, [pb, upload(ctx.gpu, g2), ab]);
    const s1 = ref.adagradUpdate(w, g1, acc0, h);
    const s2 = ref.adagradUpdate(s1.param, g2, s1.accum, h);
    expectClose(ctx, await download(ctx.gpu, pb, n), s2.param, tolFor(s2.param, h.lr), `adagrad param ${n}`);
    expectClose(ctx, await download(ctx.gpu, ab, n), s2.accum, (i) => 1e-6 * s2.accum[i], `adagrad accum ${n}`);
  });
}
adagrad.run();

const adam = gpuSuite('adam_update');
for (const n of SIZES) {
  for (const decoupled of [false, true]) {
    adam(`n=${n} ${decoupled ? 'AdamW' : 'Adam + L2'}, steps 1..3 with bias corrections`, async (ctx) => {
      const w = ref.randF32(ctx.rand, n);
      const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled };
      const pb = upload(ctx.gpu, w), mb = upload(ctx.gpu, new Float32Array(n)), vb = upload(ctx.gpu, new Float32Array(n));
      let want: ReturnType<typeof ref.adamUpdate> = { param: Float64Array.from(w), m: new Float64Array(n), v: new Float64Array(n) };
      for (let step = 1; step <= 3; step++) {
        const g = ref.randF32(ctx.rand, n);
        await runKernel(ctx, 'adam_update', {
          n, lr: h.lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weightDecay: h.weightDecay, decoupled: decoupled ? 1 : 0,
          bc1: 1 - h.beta1 ** step, bc2: 1 - h.beta2 ** step,
        }, [pb, upload(ctx.gpu, g), mb, vb]);
        want = ref.adamUpdate(want.param, g, want.m, want.v, step, h);
      }
      expectClose(ctx, await download(ctx.gpu, pb, n), want.param, tolFor(want.param, h.lr * 3), `adam param ${n}`);
      expectClose(ctx, await download(ctx.gpu, mb, n), want.m, 1e-6, `adam m ${n}`);
      expectClose(ctx, await download(ctx.gpu, vb, n), want.v, 1e-7, `adam v ${n}`);
    });
  }
}
adam.run();

finishGpuTests();
