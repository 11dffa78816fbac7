// Hot rows under BSP (src/worker/hot-rows.ts), against real servers on loopback and the GPU
// runner on lavapipe: two workers with AdaGrad tables and a summing dense hook train the same
// batches with and without hot rows. With them, the hot rows are held on the workers (never
// pulled or pushed after the start, their gradients summed with the dense ones), the rest goes
// through the servers; the final parameters (server rows for the cold keys, the workers' rows
// for the hot keys, the dense vector) must equal the run without hot rows, and the two workers'
// hot rows (values, AdaGrad accumulators, update counts) must be identical bit for bit. The
// choice itself: counted from the data, deterministic, and published through a sum.
import * as assert from 'uvu/assert';
import { gpuSuite, finishGpuTests, type GpuContext } from './helpers/gpu.ts';
import { startCluster, allJoined } from './helpers/cluster.ts';
import { ModelRunner } from '../src/model/model-runner.ts';
import { dlrmSpec, type DlrmConfig } from '../src/model/dlrm.ts';
import { WorkerStep, psTableSpecs, type WorkerBatch } from '../src/worker/worker-step.ts';
import { memoryAllreduce } from './helpers/step.ts';
import { HotRows } from '../src/worker/hot-rows.ts';
import type { PSClient, RowsWithState } from '../src/client/ps-client.ts';
import { chooseHotKeys, encodeHotKeys, decodeHotKeys } from '../src/worker/hot-choice.ts';
import { getOptimizer, resolveHyper } from '../src/server/optimizers.ts';

const s = gpuSuite('hot rows (BSP)');

// 37 rows per table, ids skewed (a squared uniform) and id 0 in every batch: a clear head (so the
// choice from two batches of 7 always has hot rows: without it, some seeds drew no repeated id in
// a table), shapes that are not tile multiples.
const cfg: DlrmConfig = { numDense: 5, numTables: 3, dim: 6, bottom: [5, 7, 6], top: [9, 1], rowsPerTable: 37 };
const EMB_LR = 0.2, DENSE_LR = 0.1, STEPS = 5, B = 7, BUDGET = 6;

function skewedBatch(r: () => number): WorkerBatch {
  return {
    B,
    inputs: { dense_x: new Float32Array(B * cfg.numDense).map(() => r() * 2 - 1), labels: new Float32Array(B).map(() => (r() < 0.5 ? 0 : 1)) },
    tables: Array.from({ length: cfg.numTables }, () => ({ ids: Float64Array.from({ length: B }, (_, j) => (j === 0 ? 0 : Math.floor(r() ** 2 * cfg.rowsPerTable))) })),
  };
}

interface Outcome { rows: Float32Array[]; held: RowsWithState[]; dense: Float32Array; pulledBytes: number; hot: HotRows[] }

async function train(ctx: GpuContext, batches: WorkerBatch[][], hotKeys: BigUint64Array[] | null): Promise<Outcome> {
  const W = batches[0]!.length;
  const cluster = await startCluster({ servers: 2 });
  const runners: ModelRunner[] = [];
  try {
    const clients: PSClient[] = [];
    for (let w = 0; w < W; w++) clients.push(await cluster.client(`worker-${w}`));
    await allJoined(clients, W);
    const spec = dlrmSpec(cfg, { optimizer: 'adagrad', hyper: { lr: EMB_LR }, initScale: 0.5 });
    const { specs, tableIds } = psTableSpecs(spec, 1, 11n);
    for (const c of clients) await c.declareTables(specs);
    const opt = getOptimizer('adagrad');
    const hot = clients.map(() => (hotKeys ? new HotRows(hotKeys.map((keys) => ({ keys, dim: cfg.dim, optimizer: opt, hyper: resolveHyper(opt, { lr: EMB_LR }) }))) : null));
    for (let w = 0; w < W; w++) runners.push(await ModelRunner.create(ctx.gpu, spec, { seed: 5 }));
    const hook = memoryAllreduce(W);
    const steppers = runners.map((runner, w) => new WorkerStep({
      client: clients[w]!, runner, tableIds, globalBatch: B * W, hot: hot[w] ?? undefined,
      dense: { mode: 'local', optimizer: { kind: 'sgd', lr: DENSE_LR }, hook },
    }));
    await Promise.all(hot.map((h, w) => h?.readFrom(clients[w]!, tableIds)));
    const pull0 = clients.reduce((a, c) => a + c.bytes.pull, 0);
    for (const step of batches) await Promise.all(steppers.map((st, w) => st.run(step[w]!)));
    const pulledBytes = clients.reduce((a, c) => a + c.bytes.pull, 0) - pull0;
    const all = BigUint64Array.from({ length: cfg.rowsPerTable }, (_, i) => BigInt(i));
    const rows = await Promise.all(tableIds.map((id, i) => clients[0]!.pull(id, all, { clock: batches.length }).then((r) => (hot[0] ? hot[0].overlay(i, all, r) : r))));
    // What a checkpoint writes: rank 0 writes the hot rows back, and the servers hold the whole table (with AdaGrad's accumulators).
    await hot[0]?.writeTo(clients[0]!, tableIds);
    const held = await Promise.all(tableIds.map((id) => clients[0]!.readRows(id, all)));
    return { rows, held, dense: await runners[0]!.readDense(), pulledBytes, hot: hot.filter((h): h is HotRows => h !== null) };
  } finally {
    for (const r of runners) r.destroy();
    await cluster.close();
  }
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

s('W = 2, AdaGrad, BSP: hot rows on train the parameters of hot rows off; both workers hold the same bits', async (ctx) => {
  const batches = Array.from({ length: STEPS }, () => [skewedBatch(ctx.rand), skewedBatch(ctx.rand)]);
  // Chosen from the first two steps of rank 0's data, as the training worker does.
  const hotKeys = await chooseHotKeys(batches.slice(0, 2).map((b) => b[0]!.tables), cfg.numTables, BUDGET);
  assert.ok(hotKeys.every((k) => k.length > 0), 'every table has hot rows');
  const off = await train(ctx, batches, null);
  const on = await train(ctx, batches, hotKeys);
  // W = 2: the servers' f64 sum of two f32 rounds to the f32 sum the hook computes, and the update
  // is the servers' function: the same values are expected; 1e-6 leaves room for nothing else.
  for (let t = 0; t < cfg.numTables; t++) {
    const d = maxDiff(on.rows[t]!, off.rows[t]!);
    assert.ok(d <= 1e-6, `table ${t}: hot rows on vs off differ by ${d}`);
  }
  assert.ok(maxDiff(on.dense, off.dense) <= 1e-6, `dense: ${maxDiff(on.dense, off.dense)}`);
  for (let t = 0; t < cfg.numTables; t++) {
    const x = on.held[t]!, y = off.held[t]!;
    assert.ok(maxDiff(x.values, y.values) <= 1e-6 && maxDiff(x.slots[0]!, y.slots[0]!) <= 1e-6, `table ${t}: written back, the servers hold what they hold without hot rows`);
    assert.equal(Array.from(x.steps), Array.from(y.steps), `table ${t}: update counts written back`);
    // ReadRows reads what a pull reads (values), in the order asked.
    assert.equal(Array.from(x.values), Array.from(on.rows[t]!), `table ${t}: ReadRows values = pulled rows (hot rows on)`);
    assert.equal(Array.from(y.values), Array.from(off.rows[t]!), `table ${t}: ReadRows values = pulled rows (hot rows off)`);
    assert.ok(y.slots[0]!.some((v) => v > 0), `table ${t}: AdaGrad accumulators read back`);
  }
  const [a, b] = on.hot as [HotRows, HotRows];
  for (let t = 0; t < cfg.numTables; t++) {
    const x = a.state(t)!, y = b.state(t)!;
    assert.equal(Array.from(x.values), Array.from(y.values), `table ${t}: hot values identical on both workers`);
    assert.equal(Array.from(x.slots[0]!), Array.from(y.slots[0]!), `table ${t}: AdaGrad accumulators identical`);
    assert.equal(Array.from(x.steps), Array.from(y.steps), `table ${t}: update counts identical`);
    assert.ok(x.steps.some((n) => n > 0), `table ${t}: some hot row was updated`);
  }
  assert.ok(on.pulledBytes < off.pulledBytes, `fewer bytes pulled with hot rows (${on.pulledBytes} vs ${off.pulledBytes})`);
});

s('the choice: most frequent first, ties by id, singletons left out; published keys decode to the same keys', async () => {
  const batch = (ids: number[]) => [{ ids: Float64Array.from(ids) }];
  const got = await chooseHotKeys([batch([5, 3, 3, 9, 7, 7]), batch([7, 3, 2 ** 47 + 1, 2 ** 47 + 1, 11])], 1, 3);
  assert.equal(Array.from(got[0]!), [3n, 7n, 2n ** 47n + 1n]);
  assert.equal(Array.from((await chooseHotKeys([batch([1, 2, 3])], 1, 5))[0]!), [], 'ids seen once are not hot');
  // Ties by the smaller id, whatever order they arrive in; the budget cuts the list.
  assert.equal(Array.from((await chooseHotKeys([batch([9, 4, 9, 4, 6, 6, 1, 1, 1])], 1, 3))[0]!), [1n, 4n, 6n]);
  const keys = [BigUint64Array.from([0n, 1n, 255n, 256n, 2n ** 48n - 1n]), new BigUint64Array(0)];
  const v = encodeHotKeys(keys, 2, 5);
  // What the other workers contribute: zeros; the sum is rank 0's vector.
  const sum = Float32Array.from(v, (x, i) => x + encodeHotKeys(null, 2, 5)[i]!);
  assert.equal(decodeHotKeys(sum, 2, 5).map((k) => Array.from(k)), keys.map((k) => Array.from(k)));
  // fp16 on the ring keeps every piece (integers < 256).
  assert.ok(v.every((x) => Number.isInteger(x) && x >= 0 && x < 256));
  assert.throws(() => decodeHotKeys(Float32Array.from(sum, (x) => x * 2), 2, 5), /8-bit piece|published/);
  assert.throws(() => decodeHotKeys(sum.subarray(1), 2, 5), /same --hot-rows/);
});

s.run();
finishGpuTests();
