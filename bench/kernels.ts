// Kernel benchmark at DLRM shapes (batch 2048, 26 tables of dim 64, bottom MLP 13-512-256-64,
// top MLP 415-512-256-1), plus matmul_naive vs linear_fwd at 2048x512x512.
// Each kernel: a batch of repeated dispatches in one pass and one submit, timed with
// timestamp queries when the device has them (wall time around onSubmittedWorkDone otherwise);
// the median of several batches is reported.
//   node --import tsx bench/kernels.ts [--json] [--quick] [--only=NAME]   (--only: a subset, for kernel work)
import { fileURLToPath } from 'node:url';
import { acquireGpu, waitIdle, type Gpu } from '../src/gpu/device.ts';
import { KernelRegistry } from '../src/gpu/kernel-registry.ts';
import { Dispatcher, type BufferArg } from '../src/gpu/dispatch.ts';
import { readBuffer, STORAGE_USAGE } from '../src/gpu/buffers.ts';
import { printTable } from './table.ts';

export interface KernelResult {
  name: string;
  shape: string;
  ms: number;
  gflops?: number;
  gbps?: number;
  dispatches: number;
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
  /** Runs `record` in one pass, one submit; returns [gpu ms (or wall ms), wall ms]. */
  async time(d: Dispatcher, record: (pass: GPUComputePassEncoder) => void): Promise<[number, number]> {
    const enc = this.gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass(this.querySet ? { timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {});
    record(pass);
    pass.end();
    if (this.querySet) enc.resolveQuerySet(this.querySet, 0, 2, this.resolve!, 0);
    const t0 = performance.now();
    d.submit(enc);
    await waitIdle(this.gpu);
    const wall = performance.now() - t0;
    if (!this.querySet) return [wall, wall];
    const ts = new BigInt64Array(await readBuffer(this.gpu, this.resolve!, 16));
    const gpuMs = Number(ts[1] - ts[0]) / 1e6;
    // Fall back to wall time if the timestamps are unusable (zero or quantized away).
    return [gpuMs > 0 ? gpuMs : wall, wall];
  }
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

export async function runKernelsBench(args: { json: boolean; quick?: boolean; only?: string }): Promise<object> {
  const quick = !!args.quick;
  const log = (s: string) => { if (!args.json) console.log(s); else process.stderr.write(s + '\n'); };
  const gpu = await acquireGpu({ label: 'bench-kernels' });
  const kernels = new KernelRegistry(gpu);
  const d = new Dispatcher(gpu, kernels, { slots: 256 });
  const timer = new Timer(gpu);
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
    const buf = gpu.device.createBuffer({ size: Math.max(16, Math.ceil(n * 4 / 4) * 4), usage: STORAGE_USAGE });
    gpu.device.queue.writeBuffer(buf, 0, fill ?? randomF32(n, seed++));
    buffers.push(buf);
    return buf;
  };

  // ---- DLRM step shapes ----
  const cases: Case[] = [];
  const U = Math.round(B * 0.6); // unique rows per table in a batch (Criteo-like skew)
  const tableRows = Array.from({ length: T }, () => f32(U * D));
  const index = Uint32Array.from({ length: B }, (_, i) => (i * 2654435761) % U);
  const offsets = Uint32Array.from({ length: B + 1 }, (_, i) => i);
  const indexBuf = f32(B, index), offsetsBuf = f32(B + 1, offsets);
  const embOut = f32(B * T * D);
  cases.push({
    name: 'embedding_bag x26', shape: `B=${B} T=${T} D=${D} one-hot`,
    calls: tableRows.map((rows, t) => ({ kernel: 'embedding_bag', params: { B, D, outStride: T * D, outOffset: t * D, mode: 0 }, buffers: [rows, indexBuf, offsetsBuf, embOut] })),
    bytes: T * (B * D * 4 * 2 + B * 8),
  });

  const layer = (label: string, M: number, K: number, N: number, relu: boolean) => {
    const x = f32(M * K), w = f32(N * K), b = f32(N), y = f32(M * N), dy = f32(M * N), dx = f32(M * K), dw = f32(N * K), db = f32(N);
    cases.push({ name: `linear_fwd ${label}`, shape: `${M}x${N}x${K}`, calls: [{ kernel: 'linear_fwd', params: { M, N, K, relu: relu ? 1 : 0 }, buffers: [x, w, b, y] }], flops: 2 * M * N * K });
    return { label, M, N, K, relu, x, w, y, dy, dx, dw, db };
  };
  const layers = [
    ...bottom.slice(1).map((n, i) => layer(`bot${i}`, B, bottom[i], n, true)),
    ...top.slice(1).map((n, i) => layer(`top${i}`, B, top[i], n, i < top.length - 2)),
  ];

  const z = f32(B * D), inter = f32(B * interW), dInter = f32(B * interW), dz = f32(B * D), de = f32(B * T * D);
  cases.push({ name: 'interaction_fwd', shape: `B=${B} F=${F} D=${D}`, calls: [{ kernel: 'interaction_fwd', params: { B, D, T }, buffers: [z, embOut, inter] }], flops: 2 * B * (interW - D) * D });
  const logits = f32(B), labels = f32(B, Float32Array.from({ length: B }, (_, i) => i % 2)), loss = f32(B), dlogits = f32(B);
  cases.push({ name: 'bce_fwd_bwd', shape: `B=${B}`, calls: [{ kernel: 'bce_fwd_bwd', params: { B }, buffers: [logits, labels, loss, dlogits] }], bytes: B * 16 });
  for (const l of [...layers].reverse()) {
    const tag = `${l.M}x${l.N}x${l.K}`;
    cases.push({ name: `linear_bwd_weight ${l.label}`, shape: tag, calls: [{ kernel: 'linear_bwd_weight', params: { M: l.M, N: l.N, K: l.K, relu: l.relu ? 1 : 0 }, buffers: [l.dy, l.x, l.y, l.dw, l.db] }], flops: 2 * l.M * l.N * l.K });
    cases.push({ name: `linear_bwd_input ${l.label}`, shape: tag, calls: [{ kernel: 'linear_bwd_input', params: { M: l.M, N: l.N, K: l.K, relu: l.relu ? 1 : 0 }, buffers: [l.dy, l.w, l.y, l.dx] }], flops: 2 * l.M * l.N * l.K });
    cases.push({ name: `bias_grad ${l.label}`, shape: `${l.M}x${l.N}`, calls: [{ kernel: 'bias_grad', params: { M: l.M, N: l.N, relu: l.relu ? 1 : 0 }, buffers: [l.dy, l.y, l.db] }], bytes: l.M * l.N * 8 });
  }
  cases.push({ name: 'interaction_bwd', shape: `B=${B} F=${F} D=${D}`, calls: [{ kernel: 'interaction_bwd', params: { B, D, T }, buffers: [z, embOut, dInter, dz, de] }], flops: 2 * B * F * (F - 1) * D });
  // segment_sum: CSR of each table's occurrences (one-hot: B occurrences over U rows).
  const perRow: number[][] = Array.from({ length: U }, () => []);
  index.forEach((u, b) => perRow[u].push(b));
  const csrOffsets = new Uint32Array(U + 1);
  perRow.forEach((l, u) => { csrOffsets[u + 1] = csrOffsets[u] + l.length; });
  const csrOffBuf = f32(U + 1, csrOffsets), csrItemsBuf = f32(B, Uint32Array.from(perRow.flat()));
  const rowGrads = Array.from({ length: T }, () => f32(U * D));
  cases.push({
    name: 'segment_sum x26', shape: `U=${U} D=${D}`,
    calls: rowGrads.map((g, t) => ({ kernel: 'segment_sum', params: { U, D, outStride: T * D, outOffset: t * D, mode: 0 }, buffers: [csrOffBuf, csrItemsBuf, offsetsBuf, de, g] })),
    bytes: T * (B * D * 4 + U * D * 4 + B * 4),
  });
  const nDense = layers.reduce((s, l) => s + l.N * l.K + l.N, 0);
  const params = f32(nDense), grads = f32(nDense), m = f32(nDense), v = f32(nDense, new Float32Array(nDense).fill(0.01));
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

  await d.prepare(...new Set(cases.flatMap((c) => c.calls.map((k) => k.kernel))));
  await waitIdle(gpu);

  const results: KernelResult[] = [];
  const started = performance.now();
  const selected = args.only ? cases.filter((c) => c.name.includes(args.only!)) : cases;
  for (const c of selected) {
    const record = (reps: number) => (pass: GPUComputePassEncoder) => {
      for (let r = 0; r < reps; r++) for (const k of c.calls) d.record(pass, k.kernel, k.params, k.buffers);
    };
    const [, warmWall] = await timer.time(d, record(1)); // warm-up, and a first estimate
    const reps = Math.max(1, Math.min(50, Math.round(targetMs / Math.max(warmWall, 0.05))));
    const times: number[] = [];
    for (let r = 0; r < runs; r++) times.push((await timer.time(d, record(reps)))[0] / reps);
    const ms = median(times);
    const res: KernelResult = { name: c.name, shape: c.shape, ms: round(ms, 4), dispatches: c.calls.length };
    if (c.flops) res.gflops = round(c.flops / ms / 1e6, 3);
    if (c.bytes) res.gbps = round(c.bytes / ms / 1e6, 3);
    results.push(res);
  }
  const naiveGflops = results.find((r) => r.name === 'matmul_naive')?.gflops ?? null;
  const linearGflops = results.find((r) => r.name === 'linear_fwd' && r.shape === `${GM}x${GN}x${GK}`)?.gflops ?? null;
  const ratio = naiveGflops && linearGflops ? round(linearGflops / naiveGflops, 3) : null;
  const fwdMs = results.filter((r) => /^(embedding_bag|linear_fwd |interaction_fwd|bce)/.test(r.name)).reduce((s, r) => s + r.ms, 0);
  const bwdMs = results.filter((r) => /^(linear_bwd|bias_grad|interaction_bwd|segment_sum|adam)/.test(r.name)).reduce((s, r) => s + r.ms, 0);

  const rows = results.map((r) => ({ kernel: r.name, shape: r.shape, ms: r.ms, 'GFLOP/s': r.gflops ?? '', 'GB/s': r.gbps ?? '' }));
  if (!args.json) {
    printTable(`Kernels (${gpu.adapterName}, ${timer.mode} timing, median of ${runs})`, rows);
    console.log(`\nDLRM kernels, batch ${B}: forward ${fwdMs.toFixed(1)} ms, backward + adam ${bwdMs.toFixed(1)} ms (sum of isolated kernel times)`);
    if (ratio) console.log(`matmul_naive ${naiveGflops} GFLOP/s vs linear_fwd ${linearGflops} GFLOP/s at ${GM}x${GN}x${GK}: ${ratio.toFixed(2)}x`);
    console.log(`bench took ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  for (const b of buffers) b.destroy();
  await gpu.destroy();
  return {
    bench: 'kernels',
    adapter: gpu.adapterName,
    timing: timer.mode,
    quick,
    batch: B,
    kernels: results,
    forwardMs: round(fwdMs, 3),
    backwardMs: round(bwdMs, 3),
    naiveGflops,
    linearGflops,
    ratio,
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const json = process.argv.includes('--json');
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);
  const result = await runKernelsBench({ json, quick: process.argv.includes('--quick'), only });
  if (json) console.log(JSON.stringify(result));
  setTimeout(() => process.exit(0), 100);
}
