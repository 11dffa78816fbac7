// The worker-side row cache (src/worker/row-cache.ts) on real servers (loopback) and the real
// WorkerStep on the GPU (lavapipe). One worker, SSP(2), SGD, AdaGrad and Adam (the stateful ones
// with each admission policy and state refresh): after every step each held row (and its held
// optimizer state) equals the server's bit for bit (its own updates are visible), and the whole
// run is bit-identical to the run without a cache, also with a tiny cache that evicts. Two
// workers of different speeds, SSP(1), SGD and AdaGrad: every row a step computes with at clock
// c has freshness >= c - s (every server reply's freshness is checked against the server's
// clocks when it answered), some rows come from the cache, and some are stale within the bound.
// BSP tables are never cached and run bit-identically with the cache configured.
import * as assert from 'uvu/assert';
import { gpuSuite, finishGpuTests, type GpuContext } from './helpers/gpu.ts';
import { startCluster, allJoined, SECRET, type TestCluster } from './helpers/cluster.ts';
import { memoryAllreduce, sameBits } from './helpers/step.ts';
import { PSClient } from '../src/client/ps-client.ts';
import type { PullBody } from '../src/wire/codec.ts';
import { ModelRunner } from '../src/model/model-runner.ts';
import { dlrmSpec, type DlrmConfig } from '../src/model/dlrm.ts';
import type { ConsistencyName, OptimizerName } from '../src/model/model-spec.ts';
import { WorkerStep, psTableSpecs, type WorkerBatch, type PreparedBatch, type StepTrace, type RowCacheConfig } from '../src/worker/worker-step.ts';

const s = gpuSuite('worker row cache');

const cfg: DlrmConfig = { numDense: 4, numTables: 3, dim: 5, bottom: [4, 6, 5], top: [7, 1], rowsPerTable: 13 };
const STEPS = 8, B = 7;

/** Skewed ids (a few hot rows), as the cache is for. */
function randomBatch(r: () => number): WorkerBatch {
  return {
    B,
    inputs: { dense_x: new Float32Array(B * cfg.numDense).map(() => r() * 2 - 1), labels: new Float32Array(B).map(() => (r() < 0.5 ? 0 : 1)) },
    tables: Array.from({ length: cfg.numTables }, () => ({ ids: Float64Array.from({ length: B }, () => Math.floor(cfg.rowsPerTable * r() ** 3)) })),
  };
}

/** Every reply a server sent: the clock the pull carried, the freshness it claimed, the servers' slowest clock right after. */
interface Answered { worker: number; clock: number; fresh: number; minClock: number; staleness: number }

function instrument(cluster: TestCluster, out: Answered[], staleness: number): void {
  for (const srv of cluster.servers) {
    type Batch = { worker: number; clock: number };
    const inner = srv as unknown as { kv: { pull(p: PullBody): Promise<{ fresh?: number }>; pullBatch(b: Batch): Promise<{ fresh?: number }> }; gate: { clocks: { minClock(): number } } };
    for (const name of ['pull', 'pullBatch'] as const) {
      const f = (inner.kv[name] as (b: Batch) => Promise<{ fresh?: number }>).bind(inner.kv);
      (inner.kv as Record<string, unknown>)[name] = async (b: Batch) => {
        const reply = await f(b);
        out.push({ worker: b.worker, clock: b.clock, fresh: reply.fresh ?? -1, minClock: inner.gate.clocks.minClock(), staleness });
        return reply;
      };
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const allKeys = BigUint64Array.from({ length: cfg.rowsPerTable }, (_, i) => BigInt(i));

interface RunOpts { consistency: ConsistencyName; staleness: number; cache?: RowCacheConfig; delayMs?: number[]; checkHeld?: boolean; optimizer?: OptimizerName }

async function train(ctx: GpuContext, batches: WorkerBatch[][], o: RunOpts) {
  const workers = batches.length;
  const cluster = await startCluster({ servers: 2 });
  const runners: ModelRunner[] = [];
  const answered: Answered[] = [], traces: StepTrace[][] = batches.map(() => []);
  let heldChecks = 0, stateChecks = 0;
  try {
    const clients: PSClient[] = [];
    for (let w = 0; w < workers; w++) clients.push(await cluster.client(`worker-${w}`));
    await allJoined(clients, workers);
    instrument(cluster, answered, o.staleness);
    const optimizer = o.optimizer ?? 'sgd';
    const spec = dlrmSpec(cfg, { optimizer, hyper: { lr: optimizer === 'sgd' ? 0.7 : 0.3 }, initScale: 0.5, consistency: o.consistency, staleness: o.staleness });
    const { specs, tableIds } = psTableSpecs(spec, 1, 11n);
    for (const c of clients) await c.declareTables(specs);
    for (let w = 0; w < workers; w++) runners.push(await ModelRunner.create(ctx.gpu, spec, { seed: 5 }));
    const hook = memoryAllreduce(workers);
    const steps = await Promise.all(runners.map(async (runner, w) => {
      const st = new WorkerStep({
        client: clients[w], runner, tableIds, globalBatch: B * workers, pipeline: true, trace: (t) => traces[w].push(t), cache: o.cache,
        dense: { mode: 'local', optimizer: { kind: 'sgd', lr: 0.2 }, hook: workers > 1 ? hook : undefined },
      });
      const mine = batches[w];
      let ahead: PreparedBatch | null = null;
      for (let t = 0; t < mine.length; t++) {
        const cur: PreparedBatch = ahead ?? st.prepare(mine[t]);
        ahead = null;
        await st.run(cur, t + 1 < mine.length ? (clock) => { ahead = st.prepare(mine[t + 1], clock); } : undefined);
        if (o.checkHeld) {
          // Own updates visible: every held row is the server's row, bit for bit.
          for (const [i, cache] of st.caches.entries()) {
            if (!cache) continue;
            const n = allKeys.length, d = cfg.dim, held = new Float32Array(n * d);
            const state = cache.stateful ? { slots: Array.from({ length: cache.opts.slotCount! }, () => new Float32Array(n * d)), steps: new Float32Array(n) } : undefined;
            const stamp = cache.peek(allKeys, held, state);
            const server = cache.stateful ? await clients[w].pullWithState(tableIds[i], allKeys) : { rows: await clients[w].pull(tableIds[i], allKeys), state: null };
            const row = (a: Float32Array, j: number) => a.subarray(j * d, (j + 1) * d);
            stamp.forEach((m, j) => {
              if (m < 0) return;
              sameBits(row(held, j), row(server.rows, j), `step ${t} table ${i} key ${j}`);
              heldChecks++;
              if (!state || !server.state) return;
              state.slots.forEach((sl, k) => sameBits(row(sl, j), row(server.state!.slots[k]!, j), `step ${t} table ${i} key ${j}: slot ${k}`));
              assert.is(state.steps[j], server.state.steps[j], `step ${t} table ${i} key ${j}: update count`);
              stateChecks++;
            });
          }
        }
        if (o.delayMs?.[w]) await sleep(o.delayMs[w]);
      }
      return st;
    }));
    await Promise.all(clients.map((c) => c.barrier('end')));
    const rows = await Promise.all(tableIds.map((id) => clients[0].pull(id, allKeys)));
    const dense = await Promise.all(runners.map((r) => r.readDense()));
    return { rows, dense, answered, traces, stats: steps.map((st) => st.cacheStats()), caches: steps.map((st) => st.caches), heldChecks, stateChecks };
  } finally {
    for (const r of runners) r.destroy();
    await cluster.close();
  }
}

function sameRun(a: Awaited<ReturnType<typeof train>>, b: Awaited<ReturnType<typeof train>>): void {
  a.rows.forEach((r, t) => sameBits(b.rows[t], r, `table ${t}`));
  a.dense.forEach((d, w) => sameBits(b.dense[w], d, `dense of worker ${w}`));
}

/** Every reply claimed no more freshness than the server had, and SSP's gate held (fresh >= clock - s). */
function repliesHonest(answered: Answered[]): void {
  for (const a of answered) {
    assert.ok(a.fresh <= a.minClock, `a reply claimed freshness ${a.fresh}, the server's slowest clock was ${a.minClock}`);
    if (a.clock >= 0) assert.ok(a.fresh >= a.clock - a.staleness, `a pull at clock ${a.clock} answered with freshness ${a.fresh} (s = ${a.staleness})`);
  }
}

s('SSP(2), 1 worker, SGD: held rows equal the servers\' after every step; the run is bit-identical to the one without a cache', async (ctx) => {
  const batches = [Array.from({ length: STEPS }, () => randomBatch(ctx.rand))];
  const plain = await train(ctx, batches, { consistency: 'ssp', staleness: 2 });
  const cached = await train(ctx, batches, { consistency: 'ssp', staleness: 2, cache: { rows: 64, aspRefresh: 2 }, checkHeld: true });
  sameRun(plain, cached);
  const st = cached.stats[0]!;
  assert.equal(st.tables, cfg.numTables);
  assert.ok(st.hits > 0 && st.misses > 0, `hits ${st.hits}, misses ${st.misses}`);
  assert.ok(st.bytesSaved === st.hits * (8 + cfg.dim * 4), `bytes saved ${st.bytesSaved} for ${st.hits} hits`);
  assert.ok(cached.heldChecks > 0);
  assert.equal(st.evictions, 0);
  repliesHonest(cached.answered);
  for (const tr of cached.traces[0]) for (const t of tr.tables) t.fresh!.forEach((m, j) => assert.ok(m >= tr.clock - 2, `clock ${tr.clock}: key ${t.keys[j]} of freshness ${m}`));
});

for (const optimizer of ['adagrad', 'adam'] as const) {
  s(`SSP(2), 1 worker, ${optimizer}: held rows and their optimizer state equal the servers' after every step; bit-identical to the run without a cache (each admission and state refresh)`, async (ctx) => {
    const batches = [Array.from({ length: STEPS }, () => randomBatch(ctx.rand))];
    const plain = await train(ctx, batches, { consistency: 'ssp', staleness: 2, optimizer });
    const policies: RowCacheConfig[] = optimizer === 'adam' ? [{ rows: 64, aspRefresh: 2 }] : [
      { rows: 64, aspRefresh: 2, admit: 'all', stateRefresh: 0 },
      { rows: 64, aspRefresh: 2, admit: 'all', stateRefresh: 100 },
      { rows: 64, aspRefresh: 2, admit: 'second-touch', stateRefresh: 3 },
      { rows: 3, aspRefresh: 2, admit: 'all', stateRefresh: 100 }, // evicts
    ];
    for (const cache of policies) {
      const what = `${optimizer} ${JSON.stringify(cache)}`;
      const cached = await train(ctx, batches, { consistency: 'ssp', staleness: 2, optimizer, cache, checkHeld: true });
      sameRun(plain, cached);
      const st = cached.stats[0]!;
      assert.equal(st.tables, cfg.numTables, what);
      assert.ok(st.hits > 0 && st.misses > 0, `${what}: hits ${st.hits}, misses ${st.misses}`);
      assert.ok(cached.stateChecks > 0 && cached.stateChecks === cached.heldChecks, `${what}: ${cached.stateChecks} state checks of ${cached.heldChecks} held rows`);
      assert.ok(cached.caches[0].every((c) => c!.statePulls > 0), what);
      assert.ok(cached.caches[0].every((c) => c!.simdUpdates), `${what}: the local update runs in the servers' WASM SIMD kernel`);
      if (cache.rows === 3) assert.ok(st.evictions > 0, `${what}: evictions ${st.evictions}`);
      repliesHonest(cached.answered);
    }
  });
}

s('an fp16 wire: stateful tables are not cached (their state travels only as f32), SGD tables are', async (ctx) => {
  const cluster = await startCluster({ servers: 1 });
  const runners: ModelRunner[] = [];
  try {
    const client = await PSClient.connect({ secret: SECRET, schedulerUrl: cluster.scheduler.url, nodeId: 'worker-f16', f16: true });
    cluster.clients.push(client);
    await allJoined([client], 1);
    for (const optimizer of ['sgd', 'adagrad'] as const) {
      const spec = dlrmSpec(cfg, { optimizer, hyper: { lr: 0.1 }, consistency: 'ssp', staleness: 2 });
      const runner = await ModelRunner.create(ctx.gpu, spec, { seed: 5 });
      runners.push(runner);
      const st = new WorkerStep({ client, runner, tableIds: [1, 2, 3], globalBatch: B, dense: { mode: 'local', optimizer: { kind: 'sgd', lr: 0.1 } }, cache: { rows: 64, aspRefresh: 2 } });
      assert.ok(st.caches.every((c) => (optimizer === 'sgd' ? c !== null : c === null)), optimizer);
    }
    const err = await client.pullWithState(1, allKeys).then(() => null, (e: Error) => e);
    assert.match(err?.message ?? 'resolved', /f32 wire/);
  } finally {
    for (const r of runners) r.destroy();
    await cluster.close();
  }
});

s('a tiny cache evicts (counted), and the run stays bit-identical to the one without a cache', async (ctx) => {
  const batches = [Array.from({ length: STEPS }, () => randomBatch(ctx.rand))];
  const plain = await train(ctx, batches, { consistency: 'ssp', staleness: 2 });
  const tiny = await train(ctx, batches, { consistency: 'ssp', staleness: 2, cache: { rows: 3, aspRefresh: 2 }, checkHeld: true });
  sameRun(plain, tiny);
  const st = tiny.stats[0]!;
  assert.ok(st.evictions > 0, `evictions ${st.evictions}`);
  for (const c of tiny.caches[0]) assert.ok(c!.size <= 3);
});

for (const optimizer of ['sgd', 'adagrad'] as const) s(`SSP(1), 2 workers of different speeds, ${optimizer}: every row used at clock c has freshness >= c - 1, some served by the cache`, async (ctx) => {
  const S = 1;
  const batches = Array.from({ length: 2 }, () => Array.from({ length: STEPS }, () => randomBatch(ctx.rand)));
  const run = await train(ctx, batches, { consistency: 'ssp', staleness: S, optimizer, cache: { rows: 64, aspRefresh: 2, admit: 'all' }, delayMs: [0, 40] });
  repliesHonest(run.answered);
  let checked = 0, fromCache = 0, stale = 0;
  run.traces.forEach((steps, w) => {
    // Per table and key: the freshness of the last reply this worker used it from (not the cache's own stamp).
    const pulled = new Map<string, number>();
    for (const tr of steps) for (const t of tr.tables) t.keys.forEach((k, j) => {
      assert.ok(t.fresh![j]! >= tr.clock - S, `worker ${w} computed with key ${k} at clock ${tr.clock}, freshness ${t.fresh![j]}`);
      const id = `${t.table}/${k}`;
      if (t.cached![j]) {
        assert.ok(pulled.has(id) && pulled.get(id)! >= tr.clock - S, `worker ${w} clock ${tr.clock}: key ${k} served by the cache from a reply of freshness ${pulled.get(id)}`);
        fromCache++;
      } else pulled.set(id, t.fresh![j]!);
      if (t.fresh![j]! < tr.clock) stale++;
      checked++;
    });
  });
  assert.ok(checked > 0 && fromCache > 0 && stale > 0, `rows checked ${checked}, from the cache ${fromCache}, stale within the bound ${stale}`);
  for (const row of run.rows) assert.ok(row.every(Number.isFinite));
});

s('BSP: no table is cached, and the run is bit-identical with the cache configured', async (ctx) => {
  const batches = [Array.from({ length: 4 }, () => randomBatch(ctx.rand))];
  const plain = await train(ctx, batches, { consistency: 'bsp', staleness: 0 });
  const withCache = await train(ctx, batches, { consistency: 'bsp', staleness: 0, cache: { rows: 64, aspRefresh: 2 } });
  sameRun(plain, withCache);
  assert.ok(withCache.caches[0].every((c) => c === null));
  assert.equal(withCache.stats[0], null);
});

s.run();
finishGpuTests();
