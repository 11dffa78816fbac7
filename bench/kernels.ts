// Kernel benchmark at DLRM shapes (batch 2048, 26 tables of dim 64, bottom MLP 13-512-256-64,
// top MLP 415-512-256-1), plus matmul_naive vs linear_fwd at 2048x512x512, then the GPU part of
// one whole step at the gpu preset through ModelRunner (bench/gpu-step.ts) with its API counts:
// submits, CPU waits, dispatches, writeBuffer calls and bytes up/down per step.
// Each kernel: a batch of repeated dispatches in one pass and one submit, timed with
// timestamp queries when the device has them (at full resolution: Dawn's timestamp quantization
// is off, see src/gpu/device.ts; wall time around onSubmittedWorkDone otherwise); the median of
// several batches is reported. Ids are drawn as the step benchmark draws them (bench/ids.ts).
// The layers whose K is not a multiple of 4 (13, 415) are also run at K rounded up to 4, the
// aligned vec4 path: what padding the activation and weight layouts would cost in the kernels
// ("padded K" rows, not in the step sums), against the shifted vec4 loads the kernels use at K.
//   node --import tsx bench/kernels.ts [--json] [--quick] [--only=NAME] [--kernel-dir=DIR]
//   (--only: the cases whose name has one of these comma-separated parts, for kernel work; --kernel-dir: kernels from DIR first, e.g. an older version)
import { fileURLToPath } from 'node:url';
import { acquireGpu, waitIdle, type Gpu } from '../src/gpu/device.ts';
import { KernelRegistry } from '../src/gpu/kernel-registry.ts';
import { Dispatcher, type BufferArg } from '../src/gpu/dispatch.ts';
import { readBuffer, STORAGE_USAGE } from '../src/gpu/buffers.ts';
import { prepareTable, type PreparedTable } from '../src/model/batch-prep.ts';
import { DLRM_PRESETS } from '../src/model/dlrm.ts';
import { SHADER_DIR } from '../src/util/package-files.ts';
import { printTable } from './table.ts';
import { skewedIds, xorshift } from './ids.ts';
import { runGpuStepBench, workerThreadsCpu } from './gpu-step.ts';

const ROWS_PER_TABLE = DLRM_PRESETS.gpu.rowsPerTable;

/** Every table's data packed at table-directory offsets (8 u32 per table), as the runner does. */
function packTables(preps: PreparedTable[], B: number, D: number) {
  const al = (n: number) => Math.max(64, Math.ceil(n / 64) * 64);
  const dir = new Uint32Array(8 * preps.length);
  let r = 0, x = 0, o = 0, c = 0, prefix = 0;
  preps.forEach((p, t) => {
    dir.set([r, x, o, c, p.unique.length, prefix, p.inverse.length, D], 8 * t);
    r += al(p.unique.length * D); x += al(p.inverse.length); o += al(B + 1); c += al(p.unique.length + 1); prefix += p.unique.length;
  });
  const rows = new Float32Array(r), index = new Uint32Array(x), csrItems = new Uint32Array(x), offsets = new Uint32Array(o), csrOffsets = new Uint32Array(c);
  preps.forEach((p, t) => {
    for (let i = 0; i < rows.length && i < p.unique.length * D; i++) rows[dir[8 * t]! + i] = Math.sin(i + t);
    index.set(p.inverse, dir[8 * t + 1]); csrItems.set(p.csrItems, dir[8 * t + 1]);
    offsets.set(p.bagOffsets, dir[8 * t + 2]); csrOffsets.set(p.csrOffsets, dir[8 * t + 3]);
  });
  return { rows, index, csrItems, offsets, csrOffsets, dir };
}

export interface KernelResult {
  name: string;
  shape: string;
  ms: number;
  gflops?: number;
  gbps?: number;
  dispatches: number;
  /** Software adapters: CPU ms of the worker threads (load-robust on a shared machine; 10 ms ticks over the repetitions). */
  cpuMs?: number;
}

interface Case {
  name: string;
  shape: string;
  /** Dispatches making up one measured unit (e.g. 26 tables). */
  calls: { kernel: string; params: Record<string, number>; buffers: BufferArg[] }[];
  flops?: number;
  bytes?: number;
}

/** Deterministic pseudo-random f32 data in [-1, 1) (cheap, so setup stays fast on 2 cores). */
function randomF32(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296) * 2 - 1;
  }
  return a;
}

class Timer {
  private querySet?: GPUQuerySet;
  private resolve?: GPUBuffer;
  constructor(readonly gpu: Gpu) {
    if (gpu.device.features.has('timestamp-query')) {
      this.querySet = gpu.device.createQuerySet({ type: 'timestamp', count: 2 });
      this.resolve = gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    }
  }
  get mode(): 'timestamp' | 'wall' {
    return this.querySet ? 'timestamp' : 'wall';
  }
  /** Runs `record` in one pass, one submit; returns [gpu ms (or wall ms), wall ms, worker-thread CPU ms]. */
  async time(d: Dispatcher, record: (pass: GPUComputePassEncoder) => void): Promise<[number, number, number]> {
    const enc = this.gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass(this.querySet ? { timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {});
    record(pass);
    pass.end();
    if (this.querySet) enc.resolveQuerySet(this.querySet, 0, 2, this.resolve!, 0);
    const c0 = workerThreadsCpu();
    const t0 = performance.now();
    d.submit(enc);
    await waitIdle(this.gpu);
    const wall = performance.now() - t0;
    const cpu = (workerThreadsCpu() - c0) * 1000;
    if (!this.querySet) return [wall, wall, cpu];
    const ts = new BigInt64Array(await readBuffer(this.gpu, this.resolve!, 16));
    const gpuMs = Number(ts[1] - ts[0]) / 1e6;
    // Fall back to wall time if the timestamps are unusable (zero).
    return [gpuMs > 0 ? gpuMs : wall, wall, cpu];
  }
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

export async function runKernelsBench(args: { json: boolean; quick?: boolean; only?: string; kernelDir?: string }): Promise<object> {
  const quick = !!args.quick;
  const log = (s: string) => { if (!args.json) console.log(s); else process.stderr.write(s + '\n'); };
  const gpu = await acquireGpu({ label: 'bench-kernels' });
  const kernels = new KernelRegistry(gpu, args.kernelDir ? [args.kernelDir, SHADER_DIR] : undefined);
  const d = new Dispatcher(gpu, kernels, { slots: 256 });
  const timer = new Timer(gpu);
  const software = /llvmpipe|lavapipe|swiftshader/i.test(gpu.adapterName);
  const targetMs = quick ? 40 : 120; // wall time aimed at per measured batch
  const runs = quick ? 3 : 5;
  const B = quick ? 512 : 2048;
  const T = 26, D = 64;
  const bottom = [13, 512, 256, 64];
  const F = T + 1, interW = D + (F * (F - 1)) / 2; // 415
  const top = [interW, 512, 256, 1];
  log(`kernels bench on ${gpu.adapterName} (timing: ${timer.mode}), batch ${B}${quick ? ' (quick)' : ''}`);

  let seed = 1;
  const buffers: GPUBuffer[] = [];
  const f32 = (n: number, fill?: Float32Array | Uint32Array): GPUBuffer => {
    const buf = gpu.device.createBuffer({ size: Math.max(16, Math.ceil((n * 4) / 16) * 16), usage: STORAGE_USAGE });
    gpu.device.queue.writeBuffer(buf, 0, fill ?? randomF32(n, seed++));
    buffers.push(buf);
    return buf;
  };

  // ---- DLRM step shapes ----
  // Ids as the step benchmark draws them (bench/ids.ts), prepared as a worker prepares them, so
  // the unique rows per table (and the gathers and segment sums) match a real step.
  const cases: Case[] = [];
  const rnd = xorshift(7);
  const preps = Array.from({ length: T }, () => prepareTable({ ids: skewedIds(B, ROWS_PER_TABLE, rnd) }, B));
  const uniq = preps.reduce((a, p) => a + p.unique.length, 0) / (T * B);
  log(`ids: ${uniq.toFixed(3)} unique rows per sample per table (the step benchmark's generator)`);
  const embOut = f32(B * T * D);
  const tableRows = preps.map((p) => f32(p.unique.length * D));
  const tableGrads = preps.map((p) => f32(p.unique.length * D));
  const de = f32(B * T * D);
  const perTable = preps.map((p, t) => ({
    rows: tableRows[t]!, grads: tableGrads[t]!, index: f32(p.inverse.length, p.inverse), offsets: f32(B + 1, p.bagOffsets),
    csrOffsets: f32(p.unique.length + 1, p.csrOffsets), csrItems: f32(p.csrItems.length, p.csrItems), U: p.unique.length,
  }));
  const Utotal = preps.reduce((a, p) => a + p.unique.length, 0);
  const gatherBytes = T * B * D * 4 * 2 + T * B * 8, scatterBytes = T * B * D * 4 + Utotal * D * 4 + T * B * 4;
  cases.push({
    name: 'embedding_bag x26', shape: `B=${B} T=${T} D=${D} one-hot`,
    calls: perTable.map((x, t) => ({ kernel: 'embedding_bag', params: { B, D, outStride: T * D, outOffset: t * D, mode: 0 }, buffers: [x.rows, x.index, x.offsets, embOut] })),
    bytes: gatherBytes,
  });
  // The same data packed at table-directory offsets, as the model runner uploads it.
  const packed = packTables(preps, B, D);
  const pk = { rows: f32(packed.rows.length, packed.rows), index: f32(packed.index.length, packed.index), offsets: f32(packed.offsets.length, packed.offsets),
    csrOffsets: f32(packed.csrOffsets.length, packed.csrOffsets), csrItems: f32(packed.csrItems.length, packed.csrItems), dir: f32(packed.dir.length, packed.dir), grads: f32(packed.rows.length) };
  cases.push({
    name: 'embedding_bag_tables', shape: `B=${B} T=${T} D=${D} one-hot`,
    calls: [{ kernel: 'embedding_bag_tables', params: { B, D, T, outStride: T * D, outOffset: 0, mode: 0 }, buffers: [pk.rows, pk.index, pk.offsets, pk.dir, embOut] }],
    bytes: gatherBytes,
  });

  // Batch splits of the weight gradients as the DLRM spec uses them (bench: S at this batch).
  const S = Math.max(1, Math.min(8, Math.floor(B / 256)));
  const layer = (label: string, M: number, K: number, N: number, relu: boolean) => {
    const x = f32(M * K), w = f32(N * K), b = f32(N), y = f32(M * N), dy = f32(M * N), dx = f32(M * K), dw = f32(N * K + N), db = f32(N);
    const parts = f32(S * (N * K + N));
    const r = relu ? 1 : 0;
    if (N === 1) {
      cases.push({ name: `linear_fwd_n1 ${label}`, shape: `${M}x${N}x${K}`, calls: [{ kernel: 'linear_fwd_n1', params: { M, K, relu: r }, buffers: [x, w, b, y] }], flops: 2 * M * N * K });
      cases.push({ name: `linear_fwd ${label} (64x64 tile)`, shape: `${M}x${N}x${K}`, calls: [{ kernel: 'linear_fwd', params: { M, N, K, relu: r }, buffers: [x, w, b, y] }], flops: 2 * M * N * K });
    } else {
      cases.push({ name: `linear_fwd ${label}`, shape: `${M}x${N}x${K}`, calls: [{ kernel: 'linear_fwd', params: { M, N, K, relu: r }, buffers: [x, w, b, y] }], flops: 2 * M * N * K });
    }
    return { label, M, N, K, relu: r, x, w, y, dy, dx, dw, db, parts };
  };
  const layers = [
    ...bottom.slice(1).map((n, i) => layer(`bot${i}`, B, bottom[i]!, n, true)),
    ...top.slice(1).map((n, i) => layer(`top${i}`, B, top[i]!, n, i < top.length - 2)),
  ];

  // Padding the layouts instead (K = 13 -> 16, 415 -> 416): the same kernels on the aligned path.
  for (const l of layers.filter((x) => x.K % 4 !== 0 && x.N > 1)) {
    const { M, N, relu: r } = l, Kp = Math.ceil(l.K / 4) * 4;
    const x = f32(M * Kp), w = f32(N * Kp), b = f32(N), dx = f32(M * Kp), parts = f32(S * (N * Kp + N));
    const tag = `${M}x${N}x${Kp}`, flops = 2 * M * N * l.K; // the useful work, as in the unpadded rows
    cases.push(
      { name: `linear_fwd ${l.label} padded K`, shape: tag, calls: [{ kernel: 'linear_fwd', params: { M, N, K: Kp, relu: r }, buffers: [x, w, b, l.y] }], flops },
      { name: `linear_bwd_weight ${l.label} (dW, db) padded K`, shape: `${tag} S=${S}`, calls: [{ kernel: 'linear_bwd_weight', params: { M, N, K: Kp, relu: r, wAt: 0, bAt: N * Kp, splits: S, splitStride: N * Kp + N }, buffers: [l.dy, x, l.y, parts] }], flops },
      { name: `linear_bwd_input ${l.label} padded K`, shape: tag, calls: [{ kernel: 'linear_bwd_input', params: { M, N, K: Kp, relu: r }, buffers: [l.dy, w, l.y, dx] }], flops },
    );
  }

  const z = f32(B * D), inter = f32(B * interW), dInter = f32(B * interW), dz = f32(B * D);
  cases.push({ name: 'interaction_fwd', shape: `B=${B} F=${F} D=${D}`, calls: [{ kernel: 'interaction_fwd', params: { B, D, T }, buffers: [z, embOut, inter] }], flops: 2 * B * (interW - D) * D });
  const logits = f32(B), labels = f32(B, Float32Array.from({ length: B }, (_, i) => i % 2)), loss = f32(B), dlogits = f32(B), lossOut = f32(1);
  cases.push({ name: 'bce_fwd_bwd', shape: `B=${B}`, calls: [{ kernel: 'bce_fwd_bwd', params: { B }, buffers: [logits, labels, loss, dlogits] }], bytes: B * 16 });
  cases.push({ name: 'sum_reduce', shape: `n=${B}`, calls: [{ kernel: 'sum_reduce', params: { n: B, scale: 1 / B }, buffers: [loss, lossOut] }], bytes: B * 4 });
  for (const l of [...layers].reverse()) {
    const tag = `${l.M}x${l.N}x${l.K}`;
    const stride = l.N * l.K + l.N;
    if (l.N === 1) {
      cases.push({ name: `linear_bwd_n1 ${l.label} (dX, dW, db)`, shape: `${tag} S=${S}`, calls: [{ kernel: 'linear_bwd_n1', params: { M: l.M, K: l.K, relu: l.relu, wAt: 0, bAt: l.K, splits: S, splitStride: stride }, buffers: [l.dy, l.x, l.w, l.y, l.dx, l.parts] }], flops: 4 * l.M * l.K });
    }
    cases.push({ name: `linear_bwd_weight ${l.label} (dW, db)`, shape: `${tag} S=${S}`, calls: [{ kernel: 'linear_bwd_weight', params: { M: l.M, N: l.N, K: l.K, relu: l.relu, wAt: 0, bAt: l.N * l.K, splits: S, splitStride: stride }, buffers: [l.dy, l.x, l.y, l.parts] }], flops: 2 * l.M * l.N * l.K });
    if (S > 1) cases.push({ name: `linear_bwd_weight ${l.label} (dW, db) unsplit`, shape: `${tag} S=1`, calls: [{ kernel: 'linear_bwd_weight', params: { M: l.M, N: l.N, K: l.K, relu: l.relu, wAt: 0, bAt: l.N * l.K }, buffers: [l.dy, l.x, l.y, l.dw] }], flops: 2 * l.M * l.N * l.K });
    cases.push({ name: `linear_bwd_input ${l.label}`, shape: tag, calls: [{ kernel: 'linear_bwd_input', params: { M: l.M, N: l.N, K: l.K, relu: l.relu }, buffers: [l.dy, l.w, l.y, l.dx] }], flops: 2 * l.M * l.N * l.K });
    cases.push({ name: `bias_grad ${l.label}`, shape: `${l.M}x${l.N}`, calls: [{ kernel: 'bias_grad', params: { M: l.M, N: l.N, relu: l.relu }, buffers: [l.dy, l.y, l.db] }], bytes: l.M * l.N * 8 });
  }
  cases.push({ name: 'interaction_bwd', shape: `B=${B} F=${F} D=${D}`, calls: [{ kernel: 'interaction_bwd', params: { B, D, T }, buffers: [z, embOut, dInter, dz, de] }], flops: 2 * B * F * (F - 1) * D });
  cases.push({
    name: 'segment_sum x26', shape: `U=${Utotal} (all tables) D=${D}`,
    calls: perTable.map((x, t) => ({ kernel: 'segment_sum', params: { U: x.U, D, outStride: T * D, outOffset: t * D, mode: 0 }, buffers: [x.csrOffsets, x.csrItems, x.offsets, de, x.grads] })),
    bytes: scatterBytes,
  });
  cases.push({
    name: 'segment_sum_tables', shape: `U=${Utotal} (all tables) D=${D}`,
    calls: [{ kernel: 'segment_sum_tables', params: { Umax: Math.max(...preps.map((p) => p.unique.length)), D, T, outStride: T * D, outOffset: 0, mode: 0 }, buffers: [pk.csrOffsets, pk.csrItems, pk.offsets, pk.dir, de, pk.grads] }],
    bytes: scatterBytes,
  });
  const nDense = layers.reduce((s, l) => s + l.N * l.K + l.N, 0);
  const params = f32(nDense), grads = f32(nDense), m = f32(nDense), v = f32(nDense, new Float32Array(nDense).fill(0.01));
  const splitParts = f32(S * nDense);
  cases.push({ name: 'split_sum (all layers)', shape: `n=${nDense} S=${S}`, calls: [{ kernel: 'split_sum', params: { n: nDense, S, stride: nDense }, buffers: [splitParts, grads] }], bytes: nDense * 4 * (S + 1) });
  cases.push({
    name: 'adam_update', shape: `n=${nDense}`,
    calls: [{ kernel: 'adam_update', params: { n: nDense, lr: 1e-3, bc1: 0.1, bc2: 0.001 }, buffers: [params, grads, m, v] }],
    bytes: nDense * 4 * 7,
  });
  cases.push({ name: 'sgd_update', shape: `n=${nDense}`, calls: [{ kernel: 'sgd_update', params: { n: nDense, lr: 1e-3 }, buffers: [params, grads] }], bytes: nDense * 4 * 3 });

  // ---- the GEMM comparison ----
  const [GM, GN, GK] = [2048, 512, 512];
  const gx = f32(GM * GK), gw = f32(GN * GK), gb = f32(GN), gy = f32(GM * GN);
  const gemm = (kernel: string): Case => ({ name: kernel, shape: `${GM}x${GN}x${GK}`, calls: [{ kernel, params: { M: GM, N: GN, K: GK, relu: 0 }, buffers: [gx, gw, gb, gy] }], flops: 2 * GM * GN * GK });
  cases.push(gemm('matmul_naive'), gemm('linear_fwd'));
  // The backward GEMMs at the same size (dY = gy, dX = gx, dW and db into gparts).
  const gparts = f32(GN * GK + GN);
  cases.push(
    { name: 'linear_bwd_input', shape: `${GM}x${GN}x${GK}`, calls: [{ kernel: 'linear_bwd_input', params: { M: GM, N: GN, K: GK, relu: 0 }, buffers: [gy, gw, gy, gx] }], flops: 2 * GM * GN * GK },
    { name: 'linear_bwd_weight', shape: `${GM}x${GN}x${GK}`, calls: [{ kernel: 'linear_bwd_weight', params: { M: GM, N: GN, K: GK, relu: 0, wAt: 0, bAt: GN * GK }, buffers: [gy, gx, gy, gparts] }], flops: 2 * GM * GN * GK },
  );

  await d.prepare(...new Set(cases.flatMap((c) => c.calls.map((k) => k.kernel))));
  await waitIdle(gpu);

  const results: KernelResult[] = [];
  const started = performance.now();
  const only = args.only?.split(',');
  const selected = only ? cases.filter((c) => only.some((o) => c.name.includes(o))) : cases;
  for (const c of selected) {
    const record = (reps: number) => (pass: GPUComputePassEncoder) => {
      for (let r = 0; r < reps; r++) for (const k of c.calls) d.record(pass, k.kernel, k.params, k.buffers);
    };
    const [, warmWall] = await timer.time(d, record(1)); // warm-up, and a first estimate
    const reps = Math.max(1, Math.min(50, Math.round(targetMs / Math.max(warmWall, 0.05))));
    const times: number[] = [], cpus: number[] = [];
    for (let r = 0; r < runs; r++) {
      const [t, , cpu] = await timer.time(d, record(reps));
      times.push(t / reps);
      cpus.push(cpu / reps);
    }
    const ms = median(times);
    const res: KernelResult = { name: c.name, shape: c.shape, ms: round(ms, 4), dispatches: c.calls.length };
    if (software) res.cpuMs = round(median(cpus), 2);
    if (c.flops) res.gflops = round(c.flops / ms / 1e6, 3);
    if (c.bytes) res.gbps = round(c.bytes / ms / 1e6, 3);
    results.push(res);
  }
  const gemmShape = `${GM}x${GN}x${GK}`;
  const naiveGflops = results.find((r) => r.name === 'matmul_naive')?.gflops ?? null;
  const linearGflops = results.find((r) => r.name === 'linear_fwd' && r.shape === gemmShape)?.gflops ?? null;
  const ratio = naiveGflops && linearGflops ? round(linearGflops / naiveGflops, 3) : null;
  // Every linear kernel against the naive one, same size, same run (the >= 4x bar).
  // On a software adapter also by worker-thread CPU, which a loaded machine does not skew.
  const linearRatios: Record<string, number> = {}, linearCpuRatios: Record<string, number> = {};
  const naiveCpu = results.find((r) => r.name === 'matmul_naive')?.cpuMs;
  for (const k of ['linear_fwd', 'linear_bwd_input', 'linear_bwd_weight']) {
    const r = results.find((x) => x.name === k && x.shape === gemmShape);
    if (r?.gflops && naiveGflops) linearRatios[k] = round(r.gflops / naiveGflops, 3);
    if (r?.cpuMs && naiveCpu) linearCpuRatios[k] = round(naiveCpu / r.cpuMs, 3);
  }
  // The kernels the DLRM spec runs (src/model/dlrm.ts), summed: forward, and backward + Adam.
  const inStep = (r: KernelResult) => !/x26|unsplit|padded K|64x64 tile|^bias_grad|^sgd_update|^matmul_naive/.test(r.name) && r.shape !== gemmShape;
  const fwdMs = results.filter((r) => inStep(r) && /^(embedding_bag|linear_fwd|interaction_fwd)/.test(r.name)).reduce((s, r) => s + r.ms, 0);
  const bwdMs = results.filter((r) => inStep(r) && /^(bce|sum_reduce|linear_bwd|interaction_bwd|segment_sum|split_sum|adam)/.test(r.name)).reduce((s, r) => s + r.ms, 0);
  const cpuSum = (re: RegExp) => round(results.filter((r) => inStep(r) && re.test(r.name)).reduce((s, r) => s + (r.cpuMs ?? 0), 0), 2);
  const fwdCpuMs = software ? cpuSum(/^(embedding_bag|linear_fwd|interaction_fwd)/) : undefined;
  const bwdCpuMs = software ? cpuSum(/^(bce|sum_reduce|linear_bwd|interaction_bwd|segment_sum|split_sum|adam)/) : undefined;

  const rows = results.map((r) => ({ kernel: r.name, shape: r.shape, ms: r.ms, ...(software ? { 'cpu ms': r.cpuMs ?? '' } : {}), 'GFLOP/s': r.gflops ?? '', 'GB/s': r.gbps ?? '' }));
  if (!args.json) {
    printTable(`Kernels (${gpu.adapterName}, ${timer.mode} timing, median of ${runs})`, rows);
    console.log(`\nDLRM kernels, batch ${B}: forward ${fwdMs.toFixed(1)} ms, backward + adam ${bwdMs.toFixed(1)} ms (sum of isolated kernel times)` +
      (software ? `; worker-thread CPU ${fwdCpuMs} + ${bwdCpuMs} ms` : ''));
    if (ratio) console.log(`matmul_naive ${naiveGflops} GFLOP/s vs linear_fwd ${linearGflops} GFLOP/s at ${GM}x${GN}x${GK}: ${ratio.toFixed(2)}x`);
    if (Object.keys(linearRatios).length) console.log(`linear kernels / naive at ${gemmShape}: ${Object.entries(linearRatios).map(([k, v]) => `${k} ${v.toFixed(2)}x`).join(', ')}`);
    if (Object.keys(linearCpuRatios).length) console.log(`  by worker-thread CPU: ${Object.entries(linearCpuRatios).map(([k, v]) => `${k} ${v.toFixed(2)}x`).join(', ')}`);
    console.log(`bench took ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  for (const b of buffers) b.destroy();
  await gpu.destroy();

  // The whole GPU step at the gpu preset, counted (its own device: the counting wrapper).
  log(`\nGPU part of one DLRM step (gpu preset, batch ${B}) through ModelRunner:`);
  const gpuStep = args.only ? null : await runGpuStepBench({ quick, log });
  if (gpuStep) {
    log(`per step: ${gpuStep.submits} submits, ${gpuStep.cpuWaits} CPU waits, ${gpuStep.dispatches} dispatches, ${gpuStep.writeBuffers} writeBuffer calls ` +
      `(${(gpuStep.bytesUp / 1e6).toFixed(2)} MB up), ${gpuStep.readbackCopies} readback copies (${(gpuStep.bytesDown / 1e6).toFixed(2)} MB down); ` +
      `${gpuStep.stepMs} ms wall${gpuStep.deviceCpuMs !== undefined ? `, ${gpuStep.deviceCpuMs} ms of lavapipe worker-thread CPU` : ''}; ${gpuStep.uniquePerSample} unique ids per sample`);
  }
  const counts = gpuStep
    ? { submits: gpuStep.submits, cpuWaits: gpuStep.cpuWaits, dispatches: gpuStep.dispatches, writeBuffers: gpuStep.writeBuffers, bytesUp: gpuStep.bytesUp, bytesDown: gpuStep.bytesDown }
    : {};
  return {
    bench: 'kernels',
    adapter: gpu.adapterName,
    timing: timer.mode,
    quick,
    batch: B,
    kernels: results,
    forwardMs: round(fwdMs, 3),
    backwardMs: round(bwdMs, 3),
    ...(software ? { forwardCpuMs: fwdCpuMs, backwardCpuMs: bwdCpuMs } : {}),
    naiveGflops,
    linearGflops,
    ratio,
    linearRatios,
    ...(software ? { linearCpuRatios } : {}),
    uniquePerSample: round(uniq, 3),
    ...counts,
    gpuStep,
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const json = process.argv.includes('--json');
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);
  const kernelDir = process.argv.find((a) => a.startsWith('--kernel-dir='))?.slice(13);
  const result = await runKernelsBench({ json, quick: process.argv.includes('--quick'), only, kernelDir });
  if (json) console.log(JSON.stringify(result));
  setTimeout(() => process.exit(0), 100);
}
