// DLRM kernels vs float64 references: embedding_bag, segment_sum (its backward over the CSR of
// occurrences), their all-tables forms (embedding_bag_tables, segment_sum_tables), interaction_fwd /
// interaction_bwd, bce_fwd_bwd and sum_reduce. Outputs NaN-poisoned.
import * as assert from 'uvu/assert';
import { gpuSuite, finishGpuTests, upload, output, download, runKernel, expectClose, type GpuContext } from './helpers/gpu.ts';
import * as ref from './helpers/reference.ts';

/** Random bags over U unique rows: sizes 0..maxBag (some empty), index = position in rows. */
function randomBags(r: () => number, B: number, U: number, maxBag: number) {
  const offsets = new Uint32Array(B + 1);
  const idx: number[] = [];
  for (let b = 0; b < B; b++) {
    const size = Math.floor(r() * (maxBag + 1));
    for (let i = 0; i < size; i++) idx.push(Math.floor(r() * U));
    offsets[b + 1] = idx.length;
  }
  return { offsets, index: Uint32Array.from(idx) };
}

/** CSR of occurrences per unique row: items are the sample index of each occurrence, in order. */
function occurrenceCsr(index: Uint32Array, offsets: Uint32Array, U: number) {
  const perRow: number[][] = Array.from({ length: U }, () => []);
  for (let b = 0; b + 1 < offsets.length; b++) for (let i = offsets[b]; i < offsets[b + 1]; i++) perRow[index[i]].push(b);
  const csrOffsets = new Uint32Array(U + 1);
  perRow.forEach((l, u) => { csrOffsets[u + 1] = csrOffsets[u] + l.length; });
  return { csrOffsets, csrItems: Uint32Array.from(perRow.flat()) };
}

const u32 = (gpu: GpuContext['gpu'], a: Uint32Array) => upload(gpu, a.length ? a : new Uint32Array(1));

// Tolerance for pooled sums: n-term sums of |values| <= 1 -> 1e-6 * n (bag sizes are small).
const emb = gpuSuite('embedding_bag');
const EMB_SHAPES = [
  { B: 1, D: 1, U: 1, maxBag: 1 },
  { B: 37, D: 13, U: 29, maxBag: 4 },
  { B: 5, D: 70, U: 3, maxBag: 6 },
  { B: 512, D: 64, U: 300, maxBag: 3 },
];
for (const s of EMB_SHAPES) {
  for (const mode of [0, 1] as const) {
    emb(`${mode ? 'mean' : 'sum'} pooling B=${s.B} D=${s.D} U=${s.U}, three tables side by side in one [B, 4D] buffer`, async (ctx) => {
      const { B, D, U } = s;
      const T = 3, stride = (T + 1) * D;
      const out = output(ctx.gpu, B * stride);
      const want = new Float64Array(B * stride).fill(NaN);
      for (let t = 0; t < T; t++) {
        const rows = ref.randF32(ctx.rand, U * D);
        const { offsets, index } = randomBags(ctx.rand, B, U, s.maxBag);
        await runKernel(ctx, 'embedding_bag', { B, D, outStride: stride, outOffset: (t + 1) * D, mode }, [upload(ctx.gpu, rows), u32(ctx.gpu, index), upload(ctx.gpu, offsets), out]);
        ref.embeddingBag(rows, index, offsets, B, D, stride, (t + 1) * D, mode, want);
      }
      // Column block 0 (where z goes in DLRM) must stay untouched: NaN in `want` checks that.
      expectClose(ctx, await download(ctx.gpu, out, B * stride), want, 1e-6 * (s.maxBag + 1), `embedding_bag ${B}x${D}`);
    });
  }
}
emb.run();

const seg = gpuSuite('segment_sum');
for (const s of EMB_SHAPES) {
  for (const mode of [0, 1] as const) {
    // scale: the worker step's gradient scale (local / global batch), applied as the rows are written.
    const scale = mode ? 0.37 : 1;
    seg(`${mode ? 'mean' : 'sum'} pooling gradients B=${s.B} D=${s.D} U=${s.U} read at a column offset, scale ${scale}`, async (ctx) => {
      const { B, D, U } = s;
      const stride = 3 * D, off = D;
      const { offsets, index } = randomBags(ctx.rand, B, U, s.maxBag);
      const { csrOffsets, csrItems } = occurrenceCsr(index, offsets, U);
      const dout = ref.randF32(ctx.rand, B * stride);
      const grads = output(ctx.gpu, U * D);
      await runKernel(ctx, 'segment_sum', { U, D, outStride: stride, outOffset: off, mode, scale }, [upload(ctx.gpu, csrOffsets), u32(ctx.gpu, csrItems), upload(ctx.gpu, offsets), upload(ctx.gpu, dout), grads]);
      const want = ref.segmentSum(csrOffsets, csrItems, offsets, dout, U, D, stride, off, mode).map((v) => v * scale);
      const maxOcc = Math.max(1, ...Array.from({ length: U }, (_, u) => csrOffsets[u + 1] - csrOffsets[u]));
      expectClose(ctx, await download(ctx.gpu, grads, U * D), want, 1e-6 * maxOcc, `segment_sum ${B}x${D}`);
    });
  }
}
seg('is the exact transpose of embedding_bag: <bag(rows), dOut> = <rows, segment_sum(dOut)>', async (ctx) => {
  const B = 40, D = 8, U = 17;
  const { offsets, index } = randomBags(ctx.rand, B, U, 5);
  const { csrOffsets, csrItems } = occurrenceCsr(index, offsets, U);
  const rows = ref.randF32(ctx.rand, U * D), dout = ref.randF32(ctx.rand, B * D);
  const pooled = output(ctx.gpu, B * D), grads = output(ctx.gpu, U * D);
  await runKernel(ctx, 'embedding_bag', { B, D, outStride: D, outOffset: 0, mode: 1 }, [upload(ctx.gpu, rows), u32(ctx.gpu, index), upload(ctx.gpu, offsets), pooled]);
  await runKernel(ctx, 'segment_sum', { U, D, outStride: D, outOffset: 0, mode: 1 }, [upload(ctx.gpu, csrOffsets), u32(ctx.gpu, csrItems), upload(ctx.gpu, offsets), upload(ctx.gpu, dout), grads]);
  const p = await download(ctx.gpu, pooled, B * D), g = await download(ctx.gpu, grads, U * D);
  let lhs = 0, rhs = 0;
  for (let i = 0; i < B * D; i++) lhs += p[i] * dout[i];
  for (let i = 0; i < U * D; i++) rhs += rows[i] * g[i];
  assert.ok(Math.abs(lhs - rhs) < 1e-4 * (1 + Math.abs(lhs)), `${lhs} vs ${rhs}`);
});
seg('U = 0 dispatches nothing', async (ctx) => {
  const one = upload(ctx.gpu, new Uint32Array([0]));
  await runKernel(ctx, 'segment_sum', { U: 0, D: 4, outStride: 4, outOffset: 0, mode: 0 }, [one, one, one, upload(ctx.gpu, new Float32Array(4)), output(ctx.gpu, 4)]);
});
seg.run();

// All tables in one dispatch: every table's data packed into shared buffers at the offsets of a
// table directory (8 u32 per table), with gaps between tables that must stay untouched.
interface PackedTables {
  rows: Float32Array; index: Uint32Array; offsets: Uint32Array; csrOffsets: Uint32Array; csrItems: Uint32Array; dir: Uint32Array;
  tables: { rows: Float32Array; index: Uint32Array; offsets: Uint32Array; csrOffsets: Uint32Array; csrItems: Uint32Array; U: number }[];
  Umax: number;
}
function packTables(r: () => number, T: number, B: number, D: number, maxU: number, maxBag: number): PackedTables {
  const tables = Array.from({ length: T }, (_, t) => {
    const U = t === 1 ? 0 : 1 + Math.floor(r() * maxU); // table 1 has no rows: an empty table
    const { offsets, index } = U === 0 ? { offsets: new Uint32Array(B + 1), index: new Uint32Array(0) } : randomBags(r, B, U, maxBag);
    const { csrOffsets, csrItems } = occurrenceCsr(index, offsets, U);
    return { rows: ref.randF32(r, U * D), index, offsets, csrOffsets, csrItems, U };
  });
  const gap = () => 1 + Math.floor(r() * 5);
  const dir = new Uint32Array(8 * T);
  let rAt = gap(), xAt = gap(), oAt = gap(), cAt = gap(), prefix = 0;
  tables.forEach((tb, t) => {
    dir.set([rAt, xAt, oAt, cAt, tb.U, prefix, tb.index.length, D], 8 * t);
    rAt += tb.rows.length + gap(); xAt += tb.index.length + gap(); oAt += B + 1 + gap(); cAt += tb.U + 1 + gap(); prefix += tb.U;
  });
  const rows = new Float32Array(rAt).fill(NaN), index = new Uint32Array(xAt).fill(0xffffffff), offsets = new Uint32Array(oAt).fill(0xffffffff);
  const csrOffsets = new Uint32Array(cAt).fill(0xffffffff), csrItems = new Uint32Array(xAt).fill(0xffffffff);
  tables.forEach((tb, t) => {
    rows.set(tb.rows, dir[8 * t]); index.set(tb.index, dir[8 * t + 1]); csrItems.set(tb.csrItems, dir[8 * t + 1]);
    offsets.set(tb.offsets, dir[8 * t + 2]); csrOffsets.set(tb.csrOffsets, dir[8 * t + 3]);
  });
  return { rows, index, offsets, csrOffsets, csrItems, dir, tables, Umax: Math.max(...tables.map((tb) => tb.U)) };
}

const multi = gpuSuite('embedding_bag_tables / segment_sum_tables (all tables, one dispatch each)');
for (const { B, D, T, maxU, maxBag } of [
  { B: 1, D: 1, T: 2, maxU: 1, maxBag: 1 },
  { B: 37, D: 13, T: 5, maxU: 29, maxBag: 4 },
  { B: 64, D: 64, T: 26, maxU: 40, maxBag: 2 },
]) {
  for (const mode of [0, 1] as const) {
    multi(`${mode ? 'mean' : 'sum'} B=${B} D=${D} T=${T}: equals the per-table kernels' references (gradients scaled by 0.37), gaps untouched`, async (ctx) => {
      const scale = 0.37; // the worker step's gradient scale, applied as the rows are written
      const pk = packTables(ctx.rand, T, B, D, maxU, maxBag);
      const outOffset = D, stride = (T + 1) * D + 3;
      const out = output(ctx.gpu, B * stride);
      const dirBuf = u32(ctx.gpu, pk.dir), offBuf = u32(ctx.gpu, pk.offsets), idxBuf = u32(ctx.gpu, pk.index);
      await runKernel(ctx, 'embedding_bag_tables', { B, D, T, outStride: stride, outOffset, mode }, [upload(ctx.gpu, pk.rows), idxBuf, offBuf, dirBuf, out]);
      const want = new Float64Array(B * stride).fill(NaN);
      pk.tables.forEach((tb, t) => ref.embeddingBag(tb.rows, tb.index, tb.offsets, B, D, stride, outOffset + t * D, mode, want));
      expectClose(ctx, await download(ctx.gpu, out, B * stride), want, 1e-6 * (maxBag + 1), `embedding_bag_tables ${B}x${T}x${D}`);

      const dout = ref.randF32(ctx.rand, B * stride);
      const grads = output(ctx.gpu, pk.rows.length);
      await runKernel(ctx, 'segment_sum_tables', { Umax: pk.Umax, D, T, outStride: stride, outOffset, mode, scale }, [u32(ctx.gpu, pk.csrOffsets), u32(ctx.gpu, pk.csrItems), offBuf, dirBuf, upload(ctx.gpu, dout), grads]);
      const wantG = new Float64Array(pk.rows.length).fill(NaN);
      let maxOcc = 1;
      pk.tables.forEach((tb, t) => {
        wantG.set(ref.segmentSum(tb.csrOffsets, tb.csrItems, tb.offsets, dout, tb.U, D, stride, outOffset + t * D, mode).map((v) => v * scale), pk.dir[8 * t]);
        for (let u = 0; u < tb.U; u++) maxOcc = Math.max(maxOcc, tb.csrOffsets[u + 1] - tb.csrOffsets[u]);
      });
      expectClose(ctx, await download(ctx.gpu, grads, pk.rows.length), wantG, 1e-6 * maxOcc, `segment_sum_tables ${B}x${T}x${D}`);
    });
  }
}
multi.run();

// Interaction: D-term dot products of values in [-1, 1]: tolerance 1e-6 * D (forward), and for
// the backward, sums of F terms of |dP| * |v| <= 1: 1e-6 * F.
const INTER_SHAPES = [
  { B: 1, T: 1, D: 1 },
  { B: 37, T: 5, D: 13 },
  { B: 3, T: 0, D: 4 },
  { B: 2, T: 40, D: 3 },
  { B: 3, T: 26, D: 70 }, // several column chunks
  { B: 2, T: 70, D: 5 }, // F > 64: the unstaged fallback paths
  { B: 64, T: 26, D: 64 }, // DLRM shape
];
const inter = gpuSuite('interaction_fwd / interaction_bwd');
for (const { B, T, D } of INTER_SHAPES) {
  const F = T + 1, W = D + (F * (F - 1)) / 2;
  inter(`forward B=${B} T=${T} D=${D} -> [B, ${W}] in tril_indices(F, F, -1) order`, async (ctx) => {
    const z = ref.randF32(ctx.rand, B * D), e = ref.randF32(ctx.rand, Math.max(1, B * T * D));
    const out = output(ctx.gpu, B * W);
    await runKernel(ctx, 'interaction_fwd', { B, D, T }, [upload(ctx.gpu, z), upload(ctx.gpu, e), out]);
    expectClose(ctx, await download(ctx.gpu, out, B * W), ref.interactionFwd(z, e, B, D, T), 1e-6 * D, `interaction_fwd ${B}x${T}x${D}`);
  });
  inter(`backward B=${B} T=${T} D=${D}`, async (ctx) => {
    const z = ref.randF32(ctx.rand, B * D), e = ref.randF32(ctx.rand, Math.max(1, B * T * D)), dout = ref.randF32(ctx.rand, B * W);
    const dz = output(ctx.gpu, B * D), de = output(ctx.gpu, Math.max(1, B * T * D));
    await runKernel(ctx, 'interaction_bwd', { B, D, T }, [upload(ctx.gpu, z), upload(ctx.gpu, e), upload(ctx.gpu, dout), dz, de]);
    const want = ref.interactionBwd(z, e, dout, B, D, T);
    expectClose(ctx, await download(ctx.gpu, dz, B * D), want.dz, 1e-6 * F, `interaction_bwd dz ${B}x${T}x${D}`);
    expectClose(ctx, await download(ctx.gpu, de, B * T * D), want.de, 1e-6 * F, `interaction_bwd de ${B}x${T}x${D}`);
  });
}
inter('pair order matches torch.tril_indices(F, F, -1): (1,0), (2,0), (2,1), (3,0), ...', async (ctx) => {
  // z = e_0 = ... one-hot vectors scaled so each pair's dot product is unique: v_f = (f+1) * 1.
  const B = 1, D = 1, T = 3;
  const z = new Float32Array([1]), e = new Float32Array([2, 3, 4]);
  const out = output(ctx.gpu, 7);
  await runKernel(ctx, 'interaction_fwd', { B, D, T }, [upload(ctx.gpu, z), upload(ctx.gpu, e), out]);
  assert.equal(Array.from(await download(ctx.gpu, out, 7)), [1, 2 * 1, 3 * 1, 3 * 2, 4 * 1, 4 * 2, 4 * 3]);
});
inter.run();

const bce = gpuSuite('bce_fwd_bwd');
bce('stable loss and gradient for ordinary and extreme logits', async (ctx) => {
  for (const B of [1, 37, 2048]) {
    const logits = ref.randF32(ctx.rand, B, -8, 8);
    const labels = Float32Array.from({ length: B }, () => (ctx.rand() < 0.5 ? 0 : 1));
    const extremes = [0, 30, -30, 100, -100, 88, -88, 1e-6];
    for (let i = 0; i < Math.min(B, extremes.length); i++) logits[i] = extremes[i];
    if (B > 20) for (let i = 10; i < 20; i++) labels[i] = ctx.rand(); // soft labels work too
    const loss = output(ctx.gpu, B), dl = output(ctx.gpu, B);
    await runKernel(ctx, 'bce_fwd_bwd', { B }, [upload(ctx.gpu, logits), upload(ctx.gpu, labels), loss, dl]);
    const want = ref.bceFwdBwd(logits, labels, B);
    // Loss: f32 rounding of x*y (|x| * 2^-24) plus relative error of log1p; gradient: ~1e-7 / B.
    expectClose(ctx, await download(ctx.gpu, loss, B), want.loss, (i) => 2e-7 * (Math.abs(logits[i]) + 1) + 1e-6 * Math.abs(want.loss[i]), `bce loss B=${B}`);
    expectClose(ctx, await download(ctx.gpu, dl, B), want.dlogits, (i) => (3e-7 + 1e-6 * Math.abs(want.dlogits[i]) * B) / B, `bce dlogit B=${B}`);
  }
});
bce('tiny losses keep their relative accuracy (log1p)', async (ctx) => {
  const logits = new Float32Array([20, -20, 40]), labels = new Float32Array([1, 0, 1]);
  const loss = output(ctx.gpu, 3), dl = output(ctx.gpu, 3);
  await runKernel(ctx, 'bce_fwd_bwd', { B: 3 }, [upload(ctx.gpu, logits), upload(ctx.gpu, labels), loss, dl]);
  const got = await download(ctx.gpu, loss, 3);
  const want = ref.bceFwdBwd(logits, labels, 3).loss;
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * want[i], `loss ${got[i]} vs ${want[i]}`);
});
bce.run();

const red = gpuSuite('sum_reduce');
for (const n of [0, 1, 255, 257, 100_000]) {
  red(`scale * sum over ${n} values`, async (ctx) => {
    const x = ref.randF32(ctx.rand, Math.max(n, 1));
    const out = output(ctx.gpu, 1);
    await runKernel(ctx, 'sum_reduce', { n, scale: 0.25 }, [upload(ctx.gpu, x), out]);
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i];
    expectClose(ctx, await download(ctx.gpu, out, 1), [0.25 * s], 1e-6 * Math.max(n, 1), `sum_reduce ${n}`);
  });
}
red('is deterministic (bit-identical on repeat)', async (ctx) => {
  const x = upload(ctx.gpu, ref.randF32(ctx.rand, 50_000));
  const a = output(ctx.gpu, 1), b = output(ctx.gpu, 1);
  await runKernel(ctx, 'sum_reduce', { n: 50_000 }, [x, a]);
  await runKernel(ctx, 'sum_reduce', { n: 50_000 }, [x, b]);
  assert.is((await download(ctx.gpu, a, 1))[0], (await download(ctx.gpu, b, 1))[0]);
});
red.run();

finishGpuTests();
