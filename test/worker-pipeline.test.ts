// The pipelined worker step against the serial one on real servers (loopback): under BSP every
// parameter is bit-identical after N steps (1 and 2 workers), with the next step's pulls sent
// early and held by the servers until the clocks before theirs are applied; under SSP(1) one worker is
// bit-identical too (its early rows are re-pulled where it pushed them: its own updates are
// seen), and with two workers of different speeds every row a step uses was read, as the server
// saw it, at a clock >= (the step's clock) - s (the servers' pull handler is instrumented).
import * as assert from 'uvu/assert';
import { gpuSuite, finishGpuTests, type GpuContext } from './helpers/gpu.ts';
import { startCluster, allJoined, type TestCluster } from './helpers/cluster.ts';
import { memoryAllreduce, sameBits } from './helpers/step.ts';
import type { PSClient } from '../src/client/ps-client.ts';
import type { PullBody } from '../src/wire/codec.ts';
import { ModelRunner } from '../src/model/model-runner.ts';
import { dlrmSpec, type DlrmConfig } from '../src/model/dlrm.ts';
import type { ConsistencyName } from '../src/model/model-spec.ts';
import { WorkerStep, psTableSpecs, type WorkerBatch, type PreparedBatch, type StepTrace } from '../src/worker/worker-step.ts';
import { HotRows } from '../src/worker/hot-rows.ts';
import { chooseHotKeys } from '../src/worker/hot-choice.ts';
import { getOptimizer, resolveHyper } from '../src/server/optimizers.ts';

const s = gpuSuite('pipelined worker step');

const cfg: DlrmConfig = { numDense: 4, numTables: 3, dim: 4, bottom: [4, 6, 4], top: [5, 1], rowsPerTable: 12 };
const STEPS = 5, B = 6;

function randomBatch(r: () => number): WorkerBatch {
  return {
    B,
    inputs: { dense_x: new Float32Array(B * cfg.numDense).map(() => r() * 2 - 1), labels: new Float32Array(B).map(() => (r() < 0.5 ? 0 : 1)) },
    tables: Array.from({ length: cfg.numTables }, () => ({ ids: Float64Array.from({ length: B }, () => Math.floor(r() * cfg.rowsPerTable)) })),
  };
}

interface ServerRead { worker: number; table: number; clock: number; keys: Set<bigint>; minClock: number; arrivedAt: number }

/**
 * Records every pull a server answers, single or batched (one entry per table part): who, which
 * clock it carried, and the servers' slowest worker clock when it was answered (<= when its rows
 * were read).
 */
function instrument(cluster: TestCluster, reads: ServerRead[]): void {
  for (const srv of cluster.servers) {
    type Batch = { worker: number; clock: number; parts: { table: number; keys: BigUint64Array }[] };
    const inner = srv as unknown as { kv: { pull(p: PullBody): Promise<unknown>; pullBatch(b: Batch): Promise<unknown> }; gate: { clocks: { minClock(): number } } };
    const pull = inner.kv.pull.bind(inner.kv), pullBatch = inner.kv.pullBatch.bind(inner.kv);
    inner.kv.pull = async (p) => {
      const arrivedAt = inner.gate.clocks.minClock();
      const reply = await pull(p);
      reads.push({ worker: p.worker, table: p.table, clock: p.clock, keys: new Set(p.keys), minClock: inner.gate.clocks.minClock(), arrivedAt });
      return reply;
    };
    inner.kv.pullBatch = async (b) => {
      const arrivedAt = inner.gate.clocks.minClock();
      const reply = await pullBatch(b);
      const minClock = inner.gate.clocks.minClock();
      for (const part of b.parts) reads.push({ worker: b.worker, table: part.table, clock: b.clock, keys: new Set(part.keys), minClock, arrivedAt });
      return reply;
    };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `batches[w]` on worker w, serial or pipelined; returns every table's rows and each worker's dense vector. */
async function train(ctx: GpuContext, batches: WorkerBatch[][], o: { pipeline: boolean; consistency: ConsistencyName; staleness?: number; hook: boolean; delayMs?: number[]; hot?: BigUint64Array[] }) {
  const workers = batches.length;
  const cluster = await startCluster({ servers: 2 });
  const runners: ModelRunner[] = [];
  const reads: ServerRead[] = [], traces: StepTrace[][] = batches.map(() => []);
  try {
    const clients: PSClient[] = [];
    for (let w = 0; w < workers; w++) clients.push(await cluster.client(`worker-${w}`));
    await allJoined(clients, workers);
    instrument(cluster, reads);
    const spec = dlrmSpec(cfg, { optimizer: 'adagrad', hyper: { lr: 0.3 }, initScale: 0.5, consistency: o.consistency, staleness: o.staleness ?? 0 });
    const { specs, tableIds } = psTableSpecs(spec, 1, 11n);
    for (const c of clients) await c.declareTables(specs);
    for (let w = 0; w < workers; w++) runners.push(await ModelRunner.create(ctx.gpu, spec, { seed: 5 }));
    const hook = memoryAllreduce(workers);
    const adagrad = getOptimizer('adagrad');
    const hot = clients.map(() => (o.hot ? new HotRows(o.hot.map((keys) => ({ keys, dim: cfg.dim, optimizer: adagrad, hyper: resolveHyper(adagrad, { lr: 0.3 }) }))) : undefined));
    await Promise.all(hot.map((h, w) => h?.readFrom(clients[w], tableIds)));
    await Promise.all(runners.map(async (runner, w) => {
      const st = new WorkerStep({
        client: clients[w], runner, tableIds, globalBatch: B * workers, pipeline: o.pipeline, trace: (t) => traces[w].push(t), hot: hot[w],
        dense: { mode: 'local', optimizer: { kind: 'adagrad', lr: 0.2 }, hook: o.hook ? hook : undefined },
      });
      const mine = batches[w];
      let ahead: PreparedBatch | null = null;
      for (let t = 0; t < mine.length; t++) {
        const cur: PreparedBatch = ahead ?? st.prepare(mine[t]);
        ahead = null;
        await st.run(cur, o.pipeline && t + 1 < mine.length ? (clock) => { ahead = st.prepare(mine[t + 1], clock); } : undefined);
        if (o.delayMs?.[w]) await sleep(o.delayMs[w]);
      }
    }));
    await Promise.all(clients.map((c) => c.barrier('end')));
    await hot[0]?.writeTo(clients[0], tableIds); // as before a checkpoint: the servers hold the whole table
    const allKeys = BigUint64Array.from({ length: cfg.rowsPerTable }, (_, i) => BigInt(i));
    const rows = await Promise.all(tableIds.map((id) => clients[0].pull(id, allKeys)));
    const dense = await Promise.all(runners.map((r) => r.readDense()));
    return { rows, dense, reads, traces, tableIds };
  } finally {
    for (const r of runners) r.destroy();
    await cluster.close();
  }
}

async function pipelinedEqualsSerial(ctx: GpuContext, workers: number, consistency: ConsistencyName, staleness = 0) {
  const batches = Array.from({ length: workers }, () => Array.from({ length: STEPS }, () => randomBatch(ctx.rand)));
  const opts = { consistency, staleness, hook: workers > 1 };
  const serial = await train(ctx, batches, { ...opts, pipeline: false });
  const piped = await train(ctx, batches, { ...opts, pipeline: true });
  serial.rows.forEach((r, t) => sameBits(piped.rows[t], r, `table ${t}`));
  serial.dense.forEach((d, w) => sameBits(piped.dense[w], d, `dense of worker ${w}`));
  return piped;
}

s('BSP: pipelined equals serial bit for bit (1 worker)', async (ctx) => {
  await pipelinedEqualsSerial(ctx, 1, 'bsp');
});

s('BSP: pipelined equals serial bit for bit (2 workers, summing dense hook)', async (ctx) => {
  const piped = await pipelinedEqualsSerial(ctx, 2, 'bsp');
  // Every pull carried the clock of the step that used it.
  for (const tr of piped.traces.flat()) for (const t of tr.tables) assert.ok(t.readClock.every((c) => c === tr.clock));
  // The next step's pulls were sent during the running step (they reached a server before the
  // clock they carry), and the servers held every one until all workers had finished the clocks
  // before it: no row was read before the updates it must see.
  const steps = piped.reads.filter((r) => r.clock > 0);
  assert.ok(steps.some((r) => r.arrivedAt < r.clock), 'no pull was sent ahead of its clock');
  for (const r of steps) assert.ok(r.minClock >= r.clock, `a pull of clock ${r.clock} answered at ${r.minClock}`);
});

s('BSP with hot rows (AdaGrad, 2 workers): pipelined equals serial bit for bit, and both equal the run without hot rows', async (ctx) => {
  const batches = Array.from({ length: 2 }, () => Array.from({ length: STEPS }, () => randomBatch(ctx.rand)));
  const hot = await chooseHotKeys(batches[0].slice(0, 2).map((b) => b.tables), cfg.numTables, 4);
  assert.ok(hot.every((k) => k.length > 0));
  const opts = { consistency: 'bsp' as const, hook: true };
  const plain = await train(ctx, batches, { ...opts, pipeline: true });
  const serial = await train(ctx, batches, { ...opts, pipeline: false, hot });
  const piped = await train(ctx, batches, { ...opts, pipeline: true, hot });
  serial.rows.forEach((r, t) => sameBits(piped.rows[t], r, `table ${t}`));
  serial.dense.forEach((d, w) => sameBits(piped.dense[w], d, `dense of worker ${w}`));
  // W = 2: the hook's f32 sum of two gradients is the servers' f64 sum rounded: the same values.
  plain.rows.forEach((r, t) => sameBits(piped.rows[t], r, `table ${t} with vs without hot rows`));
  plain.dense.forEach((d, w) => sameBits(piped.dense[w], d, `dense of worker ${w} with vs without hot rows`));
});

s('SSP(1), 1 worker: early rows plus re-pulls of its own pushes equal serial bit for bit', async (ctx) => {
  const piped = await pipelinedEqualsSerial(ctx, 1, 'ssp', 1);
  // Early pulls happened (a pull of clock c+1 answered while the worker was at c).
  assert.ok(piped.reads.some((r) => r.clock > 0 && r.minClock === r.clock - 1), 'some pull was answered ahead of the worker clock');
  for (const tr of piped.traces[0]) for (const t of tr.tables) assert.ok(t.ownSeen.every((x) => x === 1), 'own updates seen');
  // Each row travels once a step: the early pull leaves out the keys the running step is about to
  // push, which are pulled once, after that push (they were pulled early and again after it).
  const readFor = new Map<string, Set<bigint>>();
  for (const r of piped.reads) {
    const id = `${r.worker}/${r.table}/${r.clock}`, got = readFor.get(id) ?? new Set<bigint>();
    for (const k of r.keys) { assert.ok(!got.has(k), `key ${k} of table ${r.table} read twice for clock ${r.clock}`); got.add(k); }
    readFor.set(id, got);
  }
});

s('SSP(1), 2 workers of different speeds: every row used at clock c was read at a clock >= c - 1; own updates seen', async (ctx) => {
  const S = 1;
  const batches = Array.from({ length: 2 }, () => Array.from({ length: STEPS + 2 }, () => randomBatch(ctx.rand)));
  const run = await train(ctx, batches, { pipeline: true, consistency: 'ssp', staleness: S, hook: false, delayMs: [0, 40] });
  let checked = 0, stale = 0;
  run.traces.forEach((steps, w) => {
    for (const tr of steps) for (const t of tr.tables) t.keys.forEach((k, j) => {
      assert.ok(t.ownSeen[j] === 1, `worker ${w} clock ${tr.clock}: its own update of key ${k} not seen`);
      // Every pull by this worker of this table, at the clock the row's read carried, that held the key.
      const from = run.reads.filter((r) => r.worker === w && r.table === run.tableIds[t.table] && r.clock === t.readClock[j] && r.keys.has(k));
      assert.ok(from.length > 0, `worker ${w} clock ${tr.clock} key ${k}: no server read`);
      const readAt = Math.min(...from.map((r) => r.minClock));
      assert.ok(readAt >= tr.clock - S, `worker ${w} used key ${k} at clock ${tr.clock}, read at clock ${readAt}`);
      if (readAt < tr.clock) stale++;
      checked++;
    });
  });
  assert.ok(checked > 0 && stale > 0, `rows checked ${checked}, read stale within the bound ${stale}`);
});

s.run();
finishGpuTests();
