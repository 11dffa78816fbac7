// Linear layer kernels vs float64 references: linear_fwd (and the matmul_naive baseline),
// linear_bwd_input, linear_bwd_weight, bias_grad, relu_bwd. Outputs are NaN-poisoned first.
//
// Tolerance: each output is a K-term (or M-term, N-term) dot product of f32 values, so its error
// is bounded by about n * 2^-24 * sum|a_i b_i|. We allow 1e-6 * n * max|a| * max|b| per output
// plus 1e-6 * |bias|: a few times the bound, far below any indexing mistake (which is O(max|a||b|)).
import * as assert from 'uvu/assert';
import { gpuSuite, finishGpuTests, upload, output, download, runKernel, expectClose, type GpuContext } from './helpers/gpu.ts';
import * as ref from './helpers/reference.ts';

type Shape = [M: number, N: number, K: number];
// tiny, odd (not multiples of the 64x64 tiles or of 4), exact tiles, and one realistic for lavapipe
const SHAPES: Shape[] = [[1, 1, 1], [37, 29, 13], [3, 70, 33], [64, 64, 64], [130, 67, 258], [256, 512, 128]];

const dotTol = (n: number, a: ArrayLike<number>, b: ArrayLike<number>, extra = 0) => 1e-6 * Math.max(n, 1) * ref.maxAbs(a) * ref.maxAbs(b) + 1e-6 * extra + 1e-12;

async function forward(ctx: GpuContext, kernel: string, [M, N, K]: Shape, relu: boolean) {
  const x = ref.randF32(ctx.rand, M * K), w = ref.randF32(ctx.rand, N * K), b = ref.randF32(ctx.rand, N);
  const y = output(ctx.gpu, M * N);
  await runKernel(ctx, kernel, { M, N, K, relu: relu ? 1 : 0 }, [upload(ctx.gpu, x), upload(ctx.gpu, w), upload(ctx.gpu, b), y]);
  const got = await download(ctx.gpu, y, M * N);
  const want = ref.linearFwd(x, w, b, M, N, K, relu);
  expectClose(ctx, got, want, dotTol(K, x, w, ref.maxAbs(b)), `${kernel} ${M}x${N}x${K} relu=${relu}`);
  if (relu) assert.ok(got.every((v) => v >= 0), 'relu output is non-negative');
}

const fwd = gpuSuite('linear_fwd');
for (const shape of SHAPES) {
  fwd(`Y = X W^T + b at ${shape.join('x')}`, (ctx) => forward(ctx, 'linear_fwd', shape, false));
}
fwd('fused ReLU at 37x29x13 and 130x67x258', async (ctx) => {
  await forward(ctx, 'linear_fwd', [37, 29, 13], true);
  await forward(ctx, 'linear_fwd', [130, 67, 258], true);
});
fwd('K = 0 gives the bias (relu applied)', async (ctx) => {
  const b = new Float32Array([1.5, -2]);
  const y = output(ctx.gpu, 6);
  const dummy = upload(ctx.gpu, new Float32Array(4));
  await runKernel(ctx, 'linear_fwd', { M: 3, N: 2, K: 0, relu: 1 }, [dummy, dummy, upload(ctx.gpu, b), y]);
  assert.equal(Array.from(await download(ctx.gpu, y, 6)), [1.5, 0, 1.5, 0, 1.5, 0]);
});
fwd.run();

const naive = gpuSuite('matmul_naive (benchmark baseline)');
for (const shape of [[1, 1, 1], [37, 29, 13], [130, 67, 258]] as Shape[]) {
  naive(`same result as the reference at ${shape.join('x')}`, (ctx) => forward(ctx, 'matmul_naive', shape, true));
}
naive.run();

/** Backward data: random forward output Y (about half positive) and gradient dY. */
function backwardCase(ctx: GpuContext, [M, N, K]: Shape) {
  return {
    x: ref.randF32(ctx.rand, M * K),
    w: ref.randF32(ctx.rand, N * K),
    y: ref.randF32(ctx.rand, M * N),
    dy: ref.randF32(ctx.rand, M * N),
  };
}

const bwdIn = gpuSuite('linear_bwd_input');
for (const shape of SHAPES) {
  for (const relu of [false, true]) {
    if (relu && shape[0] === 1) continue;
    bwdIn(`dX = (dY*mask) W at ${shape.join('x')} relu=${relu}`, async (ctx) => {
      const [M, N, K] = shape;
      const c = backwardCase(ctx, shape);
      const dx = output(ctx.gpu, M * K);
      await runKernel(ctx, 'linear_bwd_input', { M, N, K, relu: relu ? 1 : 0 }, [upload(ctx.gpu, c.dy), upload(ctx.gpu, c.w), upload(ctx.gpu, c.y), dx]);
      const g = ref.maskedGrad(c.dy, c.y, relu);
      expectClose(ctx, await download(ctx.gpu, dx, M * K), ref.linearBwdInput(g, c.w, M, N, K), dotTol(N, c.dy, c.w), `linear_bwd_input ${shape.join('x')}`);
    });
  }
}
bwdIn.run();

const bwdW = gpuSuite('linear_bwd_weight');
for (const shape of SHAPES) {
  for (const relu of [false, true]) {
    if (relu && shape[0] === 1) continue;
    bwdW(`dW = (dY*mask)^T X at ${shape.join('x')} relu=${relu}`, async (ctx) => {
      const [M, N, K] = shape;
      const c = backwardCase(ctx, shape);
      const dw = output(ctx.gpu, N * K);
      await runKernel(ctx, 'linear_bwd_weight', { M, N, K, relu: relu ? 1 : 0 }, [upload(ctx.gpu, c.dy), upload(ctx.gpu, c.x), upload(ctx.gpu, c.y), dw]);
      const g = ref.maskedGrad(c.dy, c.y, relu);
      expectClose(ctx, await download(ctx.gpu, dw, N * K), ref.linearBwdWeight(g, c.x, M, N, K), dotTol(M, c.dy, c.x), `linear_bwd_weight ${shape.join('x')}`);
    });
  }
}
bwdW('accum = 1 adds to the existing gradient', async (ctx) => {
  const shape: Shape = [37, 29, 13];
  const [M, N, K] = shape;
  const c = backwardCase(ctx, shape);
  const prev = ref.randF32(ctx.rand, N * K);
  const dw = upload(ctx.gpu, prev);
  await runKernel(ctx, 'linear_bwd_weight', { M, N, K, relu: 0, accum: 1 }, [upload(ctx.gpu, c.dy), upload(ctx.gpu, c.x), upload(ctx.gpu, c.y), dw]);
  const want = ref.linearBwdWeight(c.dy, c.x, M, N, K).map((v, i) => v + prev[i]);
  expectClose(ctx, await download(ctx.gpu, dw, N * K), want, dotTol(M, c.dy, c.x, 1), 'linear_bwd_weight accum');
});
bwdW.run();

const bias = gpuSuite('bias_grad');
for (const [M, N] of [[1, 1], [37, 29], [2048, 3], [300, 130]]) {
  for (const relu of [false, true]) {
    bias(`db = sum_m dY*mask at ${M}x${N} relu=${relu}`, async (ctx) => {
      const dy = ref.randF32(ctx.rand, M * N), y = ref.randF32(ctx.rand, M * N);
      const db = output(ctx.gpu, N);
      await runKernel(ctx, 'bias_grad', { M, N, relu: relu ? 1 : 0 }, [upload(ctx.gpu, dy), upload(ctx.gpu, y), db]);
      expectClose(ctx, await download(ctx.gpu, db, N), ref.biasGrad(ref.maskedGrad(dy, y, relu), M, N), 1e-6 * M * ref.maxAbs(dy), `bias_grad ${M}x${N}`);
    });
  }
}
bias('accum = 1 adds to the existing gradient', async (ctx) => {
  const M = 5, N = 70;
  const dy = ref.randF32(ctx.rand, M * N), prev = ref.randF32(ctx.rand, N);
  const db = upload(ctx.gpu, prev);
  await runKernel(ctx, 'bias_grad', { M, N, relu: 0, accum: 1 }, [upload(ctx.gpu, dy), upload(ctx.gpu, dy), db]);
  expectClose(ctx, await download(ctx.gpu, db, N), ref.biasGrad(dy, M, N).map((v, i) => v + prev[i]), 1e-5, 'bias_grad accum');
});
bias.run();

const relu = gpuSuite('relu_bwd');
for (const n of [1, 1000, 300_000]) {
  relu(`dX = dY * (Y > 0) over ${n}`, async (ctx) => {
    const dy = ref.randF32(ctx.rand, n), y = ref.randF32(ctx.rand, n);
    const dx = output(ctx.gpu, n);
    await runKernel(ctx, 'relu_bwd', { n }, [upload(ctx.gpu, dy), upload(ctx.gpu, y), dx]);
    expectClose(ctx, await download(ctx.gpu, dx, n), ref.maskedGrad(dy, y, true), 0, `relu_bwd ${n}`);
  });
}
relu.run();

finishGpuTests();
