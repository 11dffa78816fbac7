// One worker process of the step benchmark (bench/step-cluster.ts starts W of them against a
// scheduler and S servers that run as processes of their own). It joins like a training worker
// (hybrid: a ring listener for the dense allreduce when W > 1), declares the gpu preset's 26
// tables, fills its share of every table's rows (so the servers hold full tables, as a trained
// model's would), then times WorkerStep (pipelined as in training unless the run says serial)
// twice over batches of the planted generator's ids:
//   1. the data path: the bench-only DataPathRunner in place of the GPU (right-shaped constant
//      gradients; no kernels, uploads or readbacks), everything else as in training;
//   2. the real step: ModelRunner on the GPU (lavapipe on the development VM).
// Rank 0 times the wire floor (one raw TCP stream, bench/raw-tcp-floor.ts) carrying the bytes
// the data path moves per step, in blocks between blocks of timed data-path steps.
// Configuration: JSON in BENCH_STEP_WORKER, the secret in HYBRIDPS_SECRET. Result: one IPC
// message to the parent; it exits when the parent goes away (its IPC channel closes).
import { acquireGpu, type Gpu } from '../src/gpu/device.ts';
import { ModelRunner, type DenseOptimizer } from '../src/model/model-runner.ts';
import { dlrmSpec, DLRM_PRESETS } from '../src/model/dlrm.ts';
import { prepareTable } from '../src/model/batch-prep.ts';
import { WorkerStep, psTableSpecs, DEFAULT_ROW_CACHE, type WorkerBatch, type DenseHook, type PreparedBatch } from '../src/worker/worker-step.ts';
import type { RowCacheStats } from '../src/worker/row-cache.ts';
import { DenseAllreduce } from '../src/worker/dense-allreduce.ts';
import { PSClient } from '../src/client/ps-client.ts';
import { plantedSamples } from '../src/data/synthetic.ts';
import { CRITEO_CATS, CRITEO_DENSE } from '../src/data/criteo.ts';
import { createLogger } from '../src/util/log.ts';
import { DataPathRunner, asModelRunner } from './data-path-runner.ts';
import { FloorClient, type FloorResult } from './raw-tcp-floor.ts';
import type { OptimizerChoice, ConsistencyChoice, RunSizes } from './step-configs.ts';

export interface WorkerProcConfig {
  schedulerUrl: string;
  nodeId: string;
  servers: number;
  workers: number;
  optimizer: OptimizerChoice;
  consistency: ConsistencyChoice;
  sizes: RunSizes;
  /** Seed of the planted model (the same on every worker: one data set, one stream per worker). */
  dataSeed: number;
  /** Port of the raw TCP floor server (bench/raw-tcp-floor.ts) on 127.0.0.1. */
  floorPort: number;
  /** WorkerStep's pipelined mode, as training runs it (the next batch prepared, and pulled early where consistency allows, during the GPU work). */
  pipeline: boolean;
  /** WorkerStep's row cache, rows per SSP/ASP table (0: off), and a stateful optimizer's policy (RowCacheConfig). */
  cacheRows: number;
  cacheAdmit: 'all' | 'second-touch';
  cacheStateRefresh: number;
}

/** One timed step, milliseconds. `dense` is the dense hook and update without the clock. */
export interface StepSample {
  total: number; prep: number; pull: number; upload: number; compute: number; download: number;
  push: number; dense: number; clock: number; allreduce: number; standIn: number;
  /** CPU time of this worker process in the step (user + system, all threads): less at the mercy of a shared machine's load than wall time. */
  cpu: number;
}

export interface PhaseResult {
  steps: StepSample[];
  /** Per step, from the client's byte counters: keys + values pulled, keys + values pushed. */
  pullBytes: number; pushBytes: number;
  /** Per step: unique rows of the batch (summed over tables), rows the client pulled and pushed. */
  rowsTouched: number; rowsPulled: number; rowsPushed: number;
  /** Rank 0 only, per step, from the servers' counters (summed over servers): time in update functions, rows pulled. */
  server: { applyMs: number; rowsPulled: number } | null;
  /** Per step over the timed steps: the row caches' counters and rows pulled with their optimizer state (null: no table cached). */
  cache: (RowCacheStats & { statePulls: number }) | null;
}

export interface WorkerProcResult {
  nodeId: string; rank: number; adapter: string;
  /** Cluster views this worker saw after it joined (a member lost or added): 0 in a clean run. */
  viewChanges: number;
  fillSec: number;
  /** Rows and bytes the servers hold after the fill (rank 0 asks them; others report 0). */
  serverRows: number; serverTableBytes: number;
  dataPath: PhaseResult;
  /** Rank 0 only: one raw TCP stream carrying this worker's pull and push bytes per step, timed between the data-path steps. */
  floor: FloorResult | null;
  gpu: PhaseResult | null;
  rssBytes: number;
}

export type WorkerProcMessage = { kind: 'result'; result: WorkerProcResult } | { kind: 'error'; message: string };

const FILL_KEYS = 4096;
/** Blocks of wire-floor rounds interleaved with the timed data-path steps. */
const FLOOR_BLOCKS = 4;
const now = () => performance.now();

/** Batches of planted samples, each with its unique-row count. */
function makeBatches(n: number, B: number, next: ReturnType<typeof plantedSamples>): { batch: WorkerBatch; unique: number }[] {
  const s = { ids: new Uint32Array(CRITEO_CATS), dense: new Float32Array(CRITEO_DENSE), label: 0 };
  return Array.from({ length: n }, () => {
    const ids = Array.from({ length: CRITEO_CATS }, () => new Uint32Array(B));
    const dense = new Float32Array(B * CRITEO_DENSE), labels = new Float32Array(B);
    for (let b = 0; b < B; b++) {
      next(s);
      for (let t = 0; t < CRITEO_CATS; t++) ids[t]![b] = s.ids[t]!;
      dense.set(s.dense, b * CRITEO_DENSE);
      labels[b] = s.label;
    }
    const batch: WorkerBatch = { B, inputs: { dense_x: dense, labels }, tables: ids.map((x) => ({ ids: x })) };
    const unique = batch.tables.reduce((a, t) => a + prepareTable(t, B).keys.length, 0);
    return { batch, unique };
  });
}

async function main(cfg: WorkerProcConfig): Promise<WorkerProcResult> {
  const secret = new TextEncoder().encode(process.env.HYBRIDPS_SECRET ?? '');
  const log = createLogger(cfg.nodeId);
  const { sizes } = cfg;
  const model = { ...DLRM_PRESETS.gpu!, rowsPerTable: sizes.rowsPerTable };
  const lr = 0.01;
  const spec = dlrmSpec(model, { optimizer: cfg.optimizer, hyper: { lr }, consistency: cfg.consistency.kind, staleness: cfg.consistency.staleness });
  const denseOpt: DenseOptimizer = { kind: cfg.optimizer, lr };

  // The GPU first: compiling the kernels must not overlap the timed data path.
  let gpu: Gpu | null = null, runner: ModelRunner | null = null;
  const ring = cfg.workers > 1 ? await DenseAllreduce.create({ nodeId: cfg.nodeId, secret }) : null;
  const client = await PSClient.connect({ secret, schedulerUrl: cfg.schedulerUrl, nodeId: cfg.nodeId, address: ring?.url ?? '' });
  ring?.attach(client);
  try {
    if (sizes.gpuSteps > 0) {
      gpu = await acquireGpu({ label: cfg.nodeId });
      runner = await ModelRunner.create(gpu, spec, { seed: 1 });
      log.info('gpu ready', { adapter: gpu.adapterName });
    }
    await client.waitForView((v) => v.servers.length >= cfg.servers && v.workers.length >= cfg.workers && client.rank >= 0, 120_000);
    if (ring) await client.waitForView((v) => v.workersEpoch === ring.ring.ringEpoch, 30_000);
    const rank = client.rank;
    // A view change after the join means a member was lost or came back (a server declared dead
    // on a starved machine, say): the numbers are then not those of S servers, and the bench says so.
    let viewChanges = 0, watching = true;
    client.onViewChange((v) => { if (!watching) return; viewChanges++; log.warn('cluster view changed during the benchmark', { epoch: v.epoch, servers: v.servers.length, workers: v.workers.length }); });
    log.info('joined', { rank, servers: client.view.servers.length, workers: client.view.workers.length });
    const { specs, tableIds } = psTableSpecs(spec, 1, 7n);
    await client.declareTables(specs);

    // Fill: every row of every table exists before the timed steps (pulls create rows; without a
    // clock they do not wait). Workers take alternate key ranges.
    const tFill = now();
    for (let start = rank * FILL_KEYS; start < sizes.rowsPerTable; start += cfg.workers * FILL_KEYS) {
      const n = Math.min(FILL_KEYS, sizes.rowsPerTable - start);
      const keys = new BigUint64Array(n);
      for (let i = 0; i < n; i++) keys[i] = BigInt(start + i);
      await Promise.all(tableIds.map((t) => client.pull(t, keys)));
    }
    const fillSec = (now() - tFill) / 1000;
    log.info('filled', { sec: fillSec.toFixed(1) });
    await client.barrier('filled');
    let serverRows = 0, serverTableBytes = 0;
    if (rank === 0) {
      const stats = (await client.serverStats()) as { tables: { rows: number; bytesPerRow: number }[] }[];
      for (const s of stats) for (const t of s.tables) { serverRows += t.rows; serverTableBytes += t.rows * t.bytesPerRow; }
    }

    const next = plantedSamples(sizes.rowsPerTable, cfg.dataSeed, rank + 1);
    const dataBatches = makeBatches(sizes.warmup + sizes.steps, sizes.batch, next);
    const gpuBatches = runner ? makeBatches(sizes.gpuWarmup + sizes.gpuSteps, sizes.batch, next) : [];

    // Instrumentation without touching WorkerStep: the clock call and the dense hook are timed.
    let clockMs = 0, hookMs = 0;
    const clock = client.clock.bind(client);
    client.clock = async () => { const t = now(); try { return await clock(); } finally { clockMs += now() - t; } };
    const hook: DenseHook | undefined = ring ? async (g) => { const t = now(); try { return await ring.sum(g); } finally { hookMs += now() - t; } } : undefined;
    const globalBatch = sizes.batch * cfg.workers;
    type ServerCounters = { applyMs: number; rowsPulled: number };
    const serverCounters = async (): Promise<ServerCounters> => {
      const all = (await client.serverStats()) as { stats: ServerCounters }[];
      return { applyMs: all.reduce((a, s) => a + s.stats.applyMs, 0), rowsPulled: all.reduce((a, s) => a + s.stats.rowsPulled, 0) };
    };
    const bytesPerRow = 8 + 4 * model.dim; // a key and its f32 row

    /** Bytes per step over the timed steps so far. */
    type SoFar = { pullBytes: number; pushBytes: number };
    /** Times WorkerStep over `batches` (the first `warmup` untimed); `afterBlock` runs after each of `blocks` runs of timed steps. */
    const runPhase = async (step: WorkerStep, batches: { batch: WorkerBatch; unique: number }[], warmup: number, standIn: DataPathRunner | null,
      blocks = 1, afterBlock?: (block: number, soFar: SoFar) => Promise<void>): Promise<PhaseResult> => {
      const steps: StepSample[] = [];
      const timed = batches.length - warmup, perBlock = Math.ceil(timed / Math.max(1, Math.min(blocks, timed)));
      // Pipelined, each step prepares the next during its GPU work, except across the warm-up's
      // end and a block's end: no early pull straddles a byte count or a floor block.
      const region = (i: number) => (i < warmup ? -1 : Math.floor((i - warmup) / perBlock));
      const statePulls = () => step.caches.reduce((a, c) => a + (c?.statePulls ?? 0), 0);
      let pull0 = 0, push0 = 0, touched = 0, cache0 = step.cacheStats(), state0 = 0;
      let server0: ServerCounters | null = null;
      let ahead: PreparedBatch | null = null;
      for (let i = 0; i < batches.length; i++) {
        if (i === warmup) { pull0 = client.bytes.pull; push0 = client.bytes.push; cache0 = step.cacheStats(); state0 = statePulls(); if (rank === 0) server0 = await serverCounters(); }
        clockMs = 0; hookMs = 0;
        const input: WorkerBatch | PreparedBatch = ahead ?? batches[i]!.batch;
        ahead = null;
        const prefetch = cfg.pipeline && i + 1 < batches.length && region(i + 1) === region(i)
          ? (clock: number) => { ahead = step.prepare(batches[i + 1]!.batch, clock); }
          : undefined;
        const t0 = now(), cpu0 = process.cpuUsage();
        const r = await step.run(input, prefetch);
        const total = now() - t0, cpu1 = process.cpuUsage(cpu0);
        if (i < warmup) continue;
        touched += batches[i]!.unique;
        const m = r.ms;
        steps.push({
          total, prep: m.prep, pull: m.pull, upload: m.upload, compute: m.compute, download: m.download, push: m.push,
          dense: m.dense - clockMs, clock: clockMs, allreduce: hookMs, standIn: standIn?.lastStepMs ?? 0, cpu: (cpu1.user + cpu1.system) / 1000,
        });
        if (afterBlock && (steps.length % perBlock === 0 || i === batches.length - 1)) {
          await afterBlock(Math.ceil(steps.length / perBlock) - 1, { pullBytes: (client.bytes.pull - pull0) / steps.length, pushBytes: (client.bytes.push - push0) / steps.length });
        }
      }
      const n = Math.max(1, steps.length);
      const pullBytes = (client.bytes.pull - pull0) / n, pushBytes = (client.bytes.push - push0) / n;
      const server1 = server0 ? await serverCounters() : null;
      const server = server0 && server1 ? { applyMs: (server1.applyMs - server0.applyMs) / n, rowsPulled: (server1.rowsPulled - server0.rowsPulled) / n } : null;
      const c1 = step.cacheStats();
      const cache = c1 && cache0 ? { hits: (c1.hits - cache0.hits) / n, misses: (c1.misses - cache0.misses) / n, evictions: (c1.evictions - cache0.evictions) / n, bytesSaved: (c1.bytesSaved - cache0.bytesSaved) / n, statePulls: (statePulls() - state0) / n } : null;
      return { steps, pullBytes, pushBytes, rowsTouched: touched / n, rowsPulled: pullBytes / bytesPerRow, rowsPushed: pushBytes / bytesPerRow, server, cache };
    };

    await client.barrier('start');
    log.info('timing the data path', { steps: sizes.steps });
    const standIn = new DataPathRunner(spec);
    const cache = cfg.cacheRows > 0 ? { ...DEFAULT_ROW_CACHE, rows: cfg.cacheRows, admit: cfg.cacheAdmit, stateRefresh: cfg.cacheStateRefresh } : undefined;
    const dataStep = new WorkerStep({ client, runner: asModelRunner(standIn), tableIds, globalBatch, dense: { mode: 'local', optimizer: denseOpt, hook }, pipeline: cfg.pipeline, cache });
    // The wire floor is timed in blocks between blocks of data-path steps, so both see the same
    // load on a shared machine; the other workers wait at a barrier meanwhile (outside the timed
    // steps). Each block carries the per-step pull (keys out, rows back) and push (keys and rows
    // out) bytes of the timed steps so far.
    const floorClient = rank === 0 ? await FloorClient.connect(cfg.floorPort) : null;
    const blocks = Math.min(FLOOR_BLOCKS, sizes.steps), floorPerBlock = Math.ceil(sizes.floorRounds / blocks);
    const floorBlock = async (k: number, soFar: SoFar) => {
      await client.barrier(`floor-${k}`);
      if (floorClient) {
        const rows = soFar.pullBytes / bytesPerRow;
        for (let i = 0; i < (k === 0 ? sizes.warmup : 0) + floorPerBlock; i++) {
          await floorClient.round(rows * 8, rows * model.dim * 4, soFar.pushBytes, k > 0 || i >= sizes.warmup);
        }
      }
      await client.barrier(`floor-${k}-done`);
    };
    const dataPath = await runPhase(dataStep, dataBatches, sizes.warmup, standIn, blocks, floorBlock);
    const floor = floorClient?.result() ?? null;
    floorClient?.close();
    let gpuPhase: PhaseResult | null = null;
    if (runner) {
      await client.barrier('gpu');
      const gpuStep = new WorkerStep({ client, runner, tableIds, globalBatch, dense: { mode: 'local', optimizer: denseOpt, hook }, pipeline: cfg.pipeline, cache });
      gpuPhase = await runPhase(gpuStep, gpuBatches, sizes.gpuWarmup, null);
    }
    await client.barrier('done'); // nobody leaves (a view change) while another still steps
    watching = false; // from here on the others leave
    return {
      nodeId: cfg.nodeId, rank, adapter: gpu?.adapterName ?? 'none', viewChanges, fillSec, serverRows, serverTableBytes,
      dataPath, floor, gpu: gpuPhase, rssBytes: process.memoryUsage().rss,
    };
  } finally {
    await client.close().catch(() => {});
    await ring?.close().catch(() => {});
    runner?.destroy();
    await gpu?.destroy();
  }
}

function tell(m: WorkerProcMessage): Promise<void> {
  return new Promise((resolve) => { if (process.send && process.connected) process.send(m, undefined, {}, () => resolve()); else resolve(); });
}

process.on('disconnect', () => process.exit(1)); // the benchmark went away: no orphan
let code = 0;
try {
  const result = await main(JSON.parse(process.env.BENCH_STEP_WORKER ?? '{}') as WorkerProcConfig);
  await tell({ kind: 'result', result });
} catch (e) {
  await tell({ kind: 'error', message: (e as Error).stack ?? String(e) });
  code = 1;
}
process.exit(code);
