// Linear layer kernels vs float64 references: linear_fwd (and the matmul_naive baseline),
// linear_bwd_input, linear_bwd_weight (split over the batch, fused bias) with split_sum, the
// one-output head (linear_fwd_n1, linear_bwd_n1), bias_grad, relu_bwd. Outputs are NaN-poisoned first.
//
// Tolerance: each output is a K-term (or M-term, N-term) dot product of f32 values, so its error
// is bounded by about n * 2^-24 * sum|a_i b_i|. We allow 1e-6 * n * max|a| * max|b| per output
// plus 1e-6 * |bias|: a few times the bound, far below any indexing mistake (which is O(max|a||b|)).
import * as assert from 'uvu/assert';
import { gpuSuite, finishGpuTests, upload, output, download, runKernel, expectClose, type GpuContext } from './helpers/gpu.ts';
import * as ref from './helpers/reference.ts';
import type { RecordOptions } from '../src/gpu/dispatch.ts';

type Shape = [M: number, N: number, K: number];
// tiny, odd (not multiples of the 64x64 tiles or of 4), exact tiles, and one realistic for lavapipe;
// K = 3, 13, 415, 417 (and N = 13, 415 for linear_bwd_input's W rows): the unaligned-row vec4
// loads at every row offset mod 4, with a tail of 1, 3 and 1 element per row.
const SHAPES: Shape[] = [[1, 1, 1], [37, 29, 13], [3, 70, 33], [64, 64, 64], [130, 67, 258], [256, 512, 128], [5, 9, 3], [67, 70, 415], [33, 13, 417], [70, 415, 13]];

const dotTol = (n: number, a: ArrayLike<number>, b: ArrayLike<number>, extra = 0) => 1e-6 * Math.max(n, 1) * ref.maxAbs(a) * ref.maxAbs(b) + 1e-6 * extra + 1e-12;

async function forward(ctx: GpuContext, kernel: string, [M, N, K]: Shape, relu: boolean, opts?: RecordOptions) {
  const x = ref.randF32(ctx.rand, M * K), w = ref.randF32(ctx.rand, N * K), b = ref.randF32(ctx.rand, N);
  const y = output(ctx.gpu, M * N);
  await runKernel(ctx, kernel, { M, N, K, relu: relu ? 1 : 0 }, [upload(ctx.gpu, x), upload(ctx.gpu, w), upload(ctx.gpu, b), y], opts);
  const got = await download(ctx.gpu, y, M * N);
  const want = ref.linearFwd(x, w, b, M, N, K, relu);
  expectClose(ctx, got, want, dotTol(K, x, w, ref.maxAbs(b)), `${kernel} ${M}x${N}x${K} relu=${relu}`);
  if (relu) assert.ok(got.every((v) => v >= 0), 'relu output is non-negative');
}

const fwd = gpuSuite('linear_fwd');
for (const shape of SHAPES) {
  fwd(`Y = X W^T + b at ${shape.join('x')}`, (ctx) => forward(ctx, 'linear_fwd', shape, false));
}
for (const [M, N, K] of [[37, 29, 13], [130, 64, 258], [1, 1, 1], [64, 70, 16]] as Shape[]) {
  fwd(`narrow-layer block (RG = 1: 32x64, 4x8 per thread) at ${M}x${N}x${K}`, (ctx) => forward(ctx, 'linear_fwd', [M, N, K], true, { constants: { RG: 1 }, workgroups: [Math.ceil(N / 64), Math.ceil(M / 32)] }));
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

// linear_bwd_weight: dW and (fused) db into one buffer at offsets wAt / bAt, split over the batch
// into partial sums that split_sum reduces. Split z sits at z*stride; the gaps around dW and db
// (and between splits) are NaN and must stay NaN.
const bwdW = gpuSuite('linear_bwd_weight (split over the batch, fused bias) + split_sum');
/** Layout of one split: [3 gap][dW N*K][2 gap][db N][5 gap]. */
const wLayout = (N: number, K: number) => ({ wAt: 3, bAt: 3 + N * K + 2, stride: 3 + N * K + 2 + N + 5 });
async function bwdWeight(ctx: GpuContext, [M, N, K]: Shape, relu: boolean, splits: number) {
  const c = backwardCase(ctx, [M, N, K]);
  const { wAt, bAt, stride } = wLayout(N, K);
  const parts = output(ctx.gpu, splits * stride);
  await runKernel(ctx, 'linear_bwd_weight', { M, N, K, relu: relu ? 1 : 0, wAt, bAt, splits, splitStride: stride }, [upload(ctx.gpu, c.dy), upload(ctx.gpu, c.x), upload(ctx.gpu, c.y), parts]);
  const g = ref.maskedGrad(c.dy, c.y, relu);
  // Each partial on its own: split z covers rows [z*ch, (z+1)*ch).
  const ch = Math.ceil(M / splits);
  const want = new Float64Array(splits * stride).fill(NaN);
  for (let z = 0; z < splits; z++) {
    const m0 = Math.min(z * ch, M), m1 = Math.min(m0 + ch, M);
    const gz = g.subarray(m0 * N, m1 * N), xz = c.x.subarray(m0 * K, m1 * K);
    want.set(ref.linearBwdWeight(gz, xz, m1 - m0, N, K), z * stride + wAt);
    want.set(ref.biasGrad(gz, m1 - m0, N), z * stride + bAt);
  }
  const tolW = dotTol(ch, c.dy, c.x) + 1e-6 * ch * ref.maxAbs(c.dy);
  expectClose(ctx, await download(ctx.gpu, parts, splits * stride), want, tolW, `dW, db partials ${M}x${N}x${K} splits=${splits}`);
  // split_sum: the full gradients (dW and db at once: the whole split) from the partials.
  const full = output(ctx.gpu, stride);
  await runKernel(ctx, 'split_sum', { n: stride, S: splits, stride }, [parts, full]);
  const got = await download(ctx.gpu, full, stride);
  expectClose(ctx, got.subarray(wAt, wAt + N * K), ref.linearBwdWeight(g, c.x, M, N, K), dotTol(M, c.dy, c.x), `dW ${M}x${N}x${K} splits=${splits}`);
  expectClose(ctx, got.subarray(bAt, bAt + N), ref.biasGrad(g, M, N), 1e-6 * M * ref.maxAbs(c.dy) + 1e-12, `db ${M}x${N}x${K} splits=${splits}`);
}
for (const shape of SHAPES) {
  for (const relu of [false, true]) {
    if (relu && shape[0] === 1) continue;
    const splits = shape[0] >= 130 ? 3 : 1;
    bwdW(`dW = (dY*mask)^T X, db = sum dY*mask at ${shape.join('x')} relu=${relu} splits=${splits}`, (ctx) => bwdWeight(ctx, shape, relu, splits));
  }
}
bwdW('more splits than rows (empty splits write zeros), 7 splits', async (ctx) => {
  await bwdWeight(ctx, [5, 29, 13], true, 7);
  await bwdWeight(ctx, [37, 70, 33], false, 7);
});
bwdW('accum = 1 with one split adds to dW and db; bias = 0 leaves db alone', async (ctx) => {
  const shape: Shape = [37, 29, 13];
  const [M, N, K] = shape;
  const c = backwardCase(ctx, shape);
  const { wAt, bAt, stride } = wLayout(N, K);
  const prev = ref.randF32(ctx.rand, stride);
  const grads = upload(ctx.gpu, prev);
  await runKernel(ctx, 'linear_bwd_weight', { M, N, K, relu: 0, wAt, bAt, accum: 1 }, [upload(ctx.gpu, c.dy), upload(ctx.gpu, c.x), upload(ctx.gpu, c.y), grads]);
  const want = Float64Array.from(prev);
  ref.linearBwdWeight(c.dy, c.x, M, N, K).forEach((v, i) => { want[wAt + i] += v; });
  ref.biasGrad(c.dy, M, N).forEach((v, i) => { want[bAt + i] += v; });
  expectClose(ctx, await download(ctx.gpu, grads, stride), want, dotTol(M, c.dy, c.x, 1) + 1e-6 * M, 'linear_bwd_weight accum');
  const fresh = output(ctx.gpu, stride);
  await runKernel(ctx, 'linear_bwd_weight', { M, N, K, relu: 0, wAt, bAt, bias: 0 }, [upload(ctx.gpu, c.dy), upload(ctx.gpu, c.x), upload(ctx.gpu, c.y), fresh]);
  assert.ok((await download(ctx.gpu, fresh, stride)).subarray(bAt, bAt + N).every(Number.isNaN), 'db not written with bias = 0');
});
bwdW('split_sum with accum adds to the output', async (ctx) => {
  const n = 1000, S = 3;
  const parts = ref.randF32(ctx.rand, S * n), prev = ref.randF32(ctx.rand, n);
  const out = upload(ctx.gpu, prev);
  await runKernel(ctx, 'split_sum', { n, S, stride: n, accum: 1 }, [upload(ctx.gpu, parts), out]);
  const want = Float64Array.from(prev, (v, i) => v + parts[i] + parts[n + i] + parts[2 * n + i]);
  expectClose(ctx, await download(ctx.gpu, out, n), want, 1e-6 * 4, 'split_sum accum');
});
bwdW('split_sum with scale: scale * (sum of the partials), the gradient scale of a worker step', async (ctx) => {
  const n = 1001, S = 3, scale = 0.3;
  const parts = ref.randF32(ctx.rand, S * n);
  const out = output(ctx.gpu, n);
  await runKernel(ctx, 'split_sum', { n, S, stride: n, scale }, [upload(ctx.gpu, parts), out]);
  const want = Float64Array.from({ length: n }, (_, i) => scale * (parts[i] + parts[n + i] + parts[2 * n + i]));
  expectClose(ctx, await download(ctx.gpu, out, n), want, 1e-6 * 4, 'split_sum scale');
});
bwdW.run();

// Rows of K % 4 != 0 start unaligned and the GEMMs load them as shifted vec4 pairs: the elements
// past the data (the binding's last vec4, and past it) are NaN here, and none may reach a result.
const tail = gpuSuite('unaligned rows: NaN past the data never enters a result');
/** An input whose bytes past `data` (the rest of its last vec4 and 64 more) are NaN. */
function uploadNaNTail(ctx: GpuContext, data: Float32Array): GPUBuffer {
  const buf = output(ctx.gpu, data.length + 16);
  ctx.gpu.device.queue.writeBuffer(buf, 0, data);
  return buf;
}
for (const [M, N, K] of [[37, 70, 13], [65, 66, 415], [9, 13, 3]] as Shape[]) {
  tail(`linear_fwd, linear_bwd_input, linear_bwd_weight at ${M}x${N}x${K}`, async (ctx) => {
    const c = backwardCase(ctx, [M, N, K]);
    const b = ref.randF32(ctx.rand, N);
    const [x, w, y, dy] = [c.x, c.w, c.y, c.dy].map((a) => uploadNaNTail(ctx, a));
    const out = output(ctx.gpu, M * N);
    await runKernel(ctx, 'linear_fwd', { M, N, K, relu: 0 }, [x!, w!, upload(ctx.gpu, b), out]);
    expectClose(ctx, await download(ctx.gpu, out, M * N), ref.linearFwd(c.x, c.w, b, M, N, K, false), dotTol(K, c.x, c.w, ref.maxAbs(b)), 'linear_fwd');
    const dx = output(ctx.gpu, M * K);
    await runKernel(ctx, 'linear_bwd_input', { M, N, K, relu: 1 }, [dy!, w!, y!, dx]);
    const g = ref.maskedGrad(c.dy, c.y, true);
    expectClose(ctx, await download(ctx.gpu, dx, M * K), ref.linearBwdInput(g, c.w, M, N, K), dotTol(N, c.dy, c.w), 'linear_bwd_input');
    const grads = output(ctx.gpu, N * K + N);
    await runKernel(ctx, 'linear_bwd_weight', { M, N, K, relu: 1, wAt: 0, bAt: N * K }, [dy!, x!, y!, grads]);
    const got = await download(ctx.gpu, grads, N * K + N);
    expectClose(ctx, got.subarray(0, N * K), ref.linearBwdWeight(g, c.x, M, N, K), dotTol(M, c.dy, c.x), 'linear_bwd_weight dW');
    expectClose(ctx, got.subarray(N * K), ref.biasGrad(g, M, N), 1e-6 * M * ref.maxAbs(c.dy) + 1e-12, 'linear_bwd_weight db');
  });
}
tail.run();

// The one-output layer (DLRM's head): forward GEMV and the fused backward (dX, dW and db partials).
const head = gpuSuite('linear_fwd_n1 / linear_bwd_n1 (N = 1)');
for (const [M, K] of [[1, 1], [37, 13], [130, 256], [70, 33]]) {
  head(`y = act(X w + b) at ${M}x1x${K}`, async (ctx) => {
    for (const relu of [false, true]) {
      const x = ref.randF32(ctx.rand, M * K), w = ref.randF32(ctx.rand, K), b = ref.randF32(ctx.rand, 1);
      const y = output(ctx.gpu, M);
      await runKernel(ctx, 'linear_fwd_n1', { M, K, relu: relu ? 1 : 0 }, [upload(ctx.gpu, x), upload(ctx.gpu, w), upload(ctx.gpu, b), y]);
      expectClose(ctx, await download(ctx.gpu, y, M), ref.linearFwd(x, w, b, M, 1, K, relu), dotTol(K, x, w, ref.maxAbs(b)), `linear_fwd_n1 ${M}x${K} relu=${relu}`);
    }
  });
  head(`dX = g w^T, dW and db partials at ${M}x1x${K}`, async (ctx) => {
    for (const [relu, splits] of [[false, 1], [true, 3]] as const) {
      const c = backwardCase(ctx, [M, 1, K]);
      const { wAt, bAt, stride } = wLayout(1, K);
      const dx = output(ctx.gpu, M * K), parts = output(ctx.gpu, splits * stride);
      await runKernel(ctx, 'linear_bwd_n1', { M, K, relu: relu ? 1 : 0, wAt, bAt, splits, splitStride: stride }, [upload(ctx.gpu, c.dy), upload(ctx.gpu, c.x), upload(ctx.gpu, c.w), upload(ctx.gpu, c.y), dx, parts]);
      const g = ref.maskedGrad(c.dy, c.y, relu);
      expectClose(ctx, await download(ctx.gpu, dx, M * K), ref.linearBwdInput(g, c.w, M, 1, K), dotTol(1, c.dy, c.w), `linear_bwd_n1 dX ${M}x${K}`);
      const full = output(ctx.gpu, stride);
      await runKernel(ctx, 'split_sum', { n: stride, S: splits, stride }, [parts, full]);
      const got = await download(ctx.gpu, full, stride);
      expectClose(ctx, got.subarray(wAt, wAt + K), ref.linearBwdWeight(g, c.x, M, 1, K), dotTol(M, c.dy, c.x), `linear_bwd_n1 dW ${M}x${K}`);
      expectClose(ctx, got.subarray(bAt, bAt + 1), ref.biasGrad(g, M, 1), 1e-6 * M * ref.maxAbs(c.dy) + 1e-12, `linear_bwd_n1 db ${M}x${K}`);
      // Gaps around dW and db stay untouched (NaN) in every split.
      const p = await download(ctx.gpu, parts, splits * stride);
      for (let z = 0; z < splits; z++) {
        for (let i = 0; i < stride; i++) if ((i < wAt || i >= wAt + K) && i !== bAt) assert.ok(Number.isNaN(p[z * stride + i]), `gap ${i} of split ${z} untouched`);
      }
    }
  });
}
head('input = 0 leaves dX alone', async (ctx) => {
  const M = 9, K = 7;
  const c = backwardCase(ctx, [M, 1, K]);
  const dx = output(ctx.gpu, M * K), grads = output(ctx.gpu, K + 1);
  await runKernel(ctx, 'linear_bwd_n1', { M, K, relu: 0, input: 0, wAt: 0, bAt: K }, [upload(ctx.gpu, c.dy), upload(ctx.gpu, c.x), upload(ctx.gpu, c.w), upload(ctx.gpu, c.y), dx, grads]);
  assert.ok((await download(ctx.gpu, dx, M * K)).every(Number.isNaN), 'dX not written');
  expectClose(ctx, (await download(ctx.gpu, grads, K + 1)).subarray(0, K), ref.linearBwdWeight(c.dy, c.x, M, 1, K), dotTol(M, c.dy, c.x), 'dW');
});
head.run();

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
bias('split over the batch: partials reduce to the bias gradient', async (ctx) => {
  const M = 300, N = 37, S = 4, stride = 40;
  const dy = ref.randF32(ctx.rand, M * N), y = ref.randF32(ctx.rand, M * N);
  const parts = output(ctx.gpu, S * stride), db = output(ctx.gpu, N);
  await runKernel(ctx, 'bias_grad', { M, N, relu: 1, splits: S, splitStride: stride }, [upload(ctx.gpu, dy), upload(ctx.gpu, y), parts]);
  await runKernel(ctx, 'split_sum', { n: N, S, stride }, [parts, db]);
  expectClose(ctx, await download(ctx.gpu, db, N), ref.biasGrad(ref.maskedGrad(dy, y, true), M, N), 1e-6 * M, 'bias_grad splits');
});
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
