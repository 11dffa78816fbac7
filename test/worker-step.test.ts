// The full worker step (prep, pull, GPU forward/backward, push, dense hook + local optimizer,
// clock) against real servers on loopback, compared with a float64 single-process SGD step of
// the CPU DLRM on the global batch: embedding rows on the servers and dense parameters on the GPU
// after one and after several steps. Two BSP workers with a summing dense hook must equal one
// process training on the concatenated batch.
import * as assert from 'uvu/assert';
import { gpuSuite, finishGpuTests, expectClose, type GpuContext } from './helpers/gpu.ts';
import { startCluster, allJoined } from './helpers/cluster.ts';
import type { PSClient } from '../src/client/ps-client.ts';
import { ModelRunner } from '../src/model/model-runner.ts';
import { dlrmSpec, type DlrmConfig } from '../src/model/dlrm.ts';
import { prepareTable } from '../src/model/batch-prep.ts';
import { WorkerStep, psTableSpecs, psDenseTableSpec, type WorkerBatch, type DenseHook } from '../src/worker/worker-step.ts';
import { dlrmCpuStep } from './model-dlrm-cpu.ts';

const s = gpuSuite('worker step vs CPU SGD');

const cfg: DlrmConfig = { numDense: 4, numTables: 2, dim: 4, bottom: [4, 6, 4], top: [5, 1], rowsPerTable: 9 };
const EMB_LR = 0.5, DENSE_LR = 0.3;
// f32 GPU math and f32 server updates vs float64, a few steps: 2e-5 absolute + 2e-4 relative.
const tol = (want: ArrayLike<number>) => (i: number) => 2e-5 + 2e-4 * Math.abs(want[i]);

function randomBatch(r: () => number, B: number): WorkerBatch {
  return {
    B,
    inputs: {
      dense_x: new Float32Array(B * cfg.numDense).map(() => r() * 2 - 1),
      labels: new Float32Array(B).map(() => (r() < 0.5 ? 0 : 1)),
    },
    tables: Array.from({ length: cfg.numTables }, () => ({ ids: Float64Array.from({ length: B }, () => Math.floor(r() * cfg.rowsPerTable)) })),
  };
}

function concat(batches: WorkerBatch[]): WorkerBatch {
  const B = batches.reduce((a, b) => a + b.B, 0);
  const cat = (f: (b: WorkerBatch) => ArrayLike<number>) => Float64Array.from(batches.flatMap((b) => Array.from(f(b))));
  return {
    B,
    inputs: { dense_x: Float32Array.from(cat((b) => b.inputs.dense_x)), labels: Float32Array.from(cat((b) => b.inputs.labels)) },
    tables: Array.from({ length: cfg.numTables }, (_, t) => ({ ids: cat((b) => b.tables[t].ids) })),
  };
}

/** A summing in-memory "allreduce" over n concurrent workers. */
function memoryAllreduce(n: number): DenseHook {
  let parts: Float32Array[] = [];
  let waiters: ((v: Float32Array) => void)[] = [];
  return (g) => new Promise<Float32Array>((resolve) => {
    parts.push(Float32Array.from(g));
    waiters.push(resolve);
    if (parts.length === n) {
      const sum = new Float32Array(g.length);
      for (const p of parts) for (let i = 0; i < sum.length; i++) sum[i] += p[i];
      const w = waiters;
      parts = [];
      waiters = [];
      for (const f of w) f(Float32Array.from(sum));
    }
  });
}

async function runCase(ctx: GpuContext, workers: number, steps: number, B: number, denseMode: 'local' | 'ps') {
  const cluster = await startCluster({ servers: 2 });
  const runners: ModelRunner[] = [];
  try {
    const clients: PSClient[] = [];
    for (let w = 0; w < workers; w++) clients.push(await cluster.client(`worker-${w}`));
    await allJoined(clients, workers);
    const spec = dlrmSpec(cfg, { optimizer: 'sgd', hyper: { lr: EMB_LR }, initScale: 0.5 });
    const { specs, tableIds } = psTableSpecs(spec, 1, 11n);
    const denseTable = 50;
    // Declaring is idempotent: every worker declares the same specs.
    for (const c of clients) await c.declareTables([...specs, psDenseTableSpec(denseTable, 8, { optimizer: 'sgd', hyper: { lr: DENSE_LR } })]);

    // Reference state: every row as the servers initialised it, the runners' initial dense vector.
    const allKeys = BigUint64Array.from({ length: cfg.rowsPerTable }, (_, i) => BigInt(i));
    const refRows = await Promise.all(tableIds.map(async (id) => Float64Array.from(await clients[0].pull(id, allKeys))));
    for (let w = 0; w < workers; w++) runners.push(await ModelRunner.create(ctx.gpu, spec, { seed: 5 }));
    let refDense = Float64Array.from(await runners[0].readDense());
    if (denseMode === 'ps') {
      // Range rows start at zero: the reference starts there too (a fixed random init would need a seeding push).
      refDense = new Float64Array(refDense.length);
    }

    const hook = memoryAllreduce(workers);
    const steppers = runners.map((runner, w) => new WorkerStep({
      client: clients[w], runner, tableIds, globalBatch: B * workers,
      dense: denseMode === 'ps' ? { mode: 'ps', tableId: denseTable } : { mode: 'local', optimizer: { kind: 'sgd', lr: DENSE_LR }, hook },
    }));

    for (let step = 0; step < steps; step++) {
      const batches = Array.from({ length: workers }, () => randomBatch(ctx.rand, B));
      const results = await Promise.all(steppers.map((st, w) => st.run(batches[w])));
      for (const r of results) for (const [k, v] of Object.entries(r.ms)) assert.ok(v >= 0 && Number.isFinite(v), `phase ${k}`);
      assert.ok(results.every((r) => r.clock === step), 'clock');

      // Single-process SGD on the global batch.
      const g = concat(batches);
      const preps = g.tables.map((t) => prepareTable(t, g.B));
      const tables = preps.map((prep, t) => {
        const rows = new Float64Array(prep.unique.length * cfg.dim);
        prep.unique.forEach((id, u) => rows.set(refRows[t].subarray(id * cfg.dim, (id + 1) * cfg.dim), u * cfg.dim));
        return { prep, rows };
      });
      const want = dlrmCpuStep(cfg, refDense, g.inputs.dense_x, g.inputs.labels, g.B, tables);
      const meanLoss = results.reduce((a, r) => a + r.loss, 0) / workers;
      expectClose(ctx, [meanLoss], [want.loss], 1e-5 + 1e-5 * want.loss, `loss step ${step}`);
      preps.forEach((prep, t) => prep.unique.forEach((id, u) => {
        for (let d = 0; d < cfg.dim; d++) refRows[t][id * cfg.dim + d] -= EMB_LR * want.tableGrads[t][u * cfg.dim + d];
      }));
      for (let i = 0; i < refDense.length; i++) refDense[i] -= DENSE_LR * want.denseGrads[i];

      if (step === 0 || step === steps - 1) {
        for (let t = 0; t < tableIds.length; t++) {
          const got = await clients[0].pull(tableIds[t], allKeys, { clock: step + 1 });
          expectClose(ctx, got, refRows[t], tol(refRows[t]), `table ${t} rows after step ${step}`);
        }
        const gotDense = denseMode === 'ps'
          ? await clients[0].pullRange(denseTable, 0, runners[0].denseLength, { clock: step + 1 })
          : await runners[0].readDense();
        expectClose(ctx, gotDense, refDense, tol(refDense), `dense after step ${step}`);
        for (const r of runners.slice(1)) if (denseMode === 'local') assert.equal(Array.from(await r.readDense()), Array.from(gotDense), 'replicas agree');
      }
    }
  } finally {
    for (const r of runners) r.destroy();
    await cluster.close();
  }
}

s('one worker, local dense SGD: 1 and 3 steps equal CPU SGD', async (ctx) => {
  await runCase(ctx, 1, 3, 6, 'local');
});

s('two BSP workers with a summing dense hook equal single-process SGD on the global batch', async (ctx) => {
  await runCase(ctx, 2, 3, 5, 'local');
});

s('pure-PS dense (range table on the servers) equals CPU SGD', async (ctx) => {
  await runCase(ctx, 1, 2, 6, 'ps');
});

s.run();
finishGpuTests();
