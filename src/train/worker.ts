// One training worker process: joins the cluster, declares the model's tables, optionally resumes
// from a checkpoint, then runs WorkerStep over its share of every global batch until the steps or
// the data run out, evaluating and checkpointing on the way. What the launcher needs (progress,
// evaluations, checkpoints, the result) goes to a `report` callback as typed events, which the
// worker role hands on to its launcher; logs go to stderr.
import { createHash } from 'node:crypto';
import { acquireGpu } from '../gpu/device.ts';
import { PSClient } from '../client/ps-client.ts';
import type { TlsCredentials } from '../transport/index.ts';
import { ModelRunner, type DenseOptimizer } from '../model/model-runner.ts';
import { denseShapes } from '../model/model-spec.ts';
import type { RowCacheStats } from '../worker/row-cache.ts';
import { loadModelModule, checkModelConfig } from './model-loader.ts';
import { WorkerStep, psTableSpecs, psDenseTableSpec, type DenseMode, type PreparedBatch } from '../worker/worker-step.ts';
import { DenseAllreduce } from '../worker/dense-allreduce.ts';
import { createLogger } from '../util/log.ts';
import type { TrainConfig } from './config.ts';
import { modelBatch, type DataStats, type DataResume, type Minibatch } from './batches.ts';
import { trainBatchesInThread, evalBatchesInThread, type ThreadedBatches } from './data-thread.ts';
import { setupHotRows, hotBudget, hotChoiceBatches, hotRowsDigest } from './hot-setup.ts';
import { evaluateHeldOut, type EvalSource, type EvalResult } from './evaluate.ts';
import { saveTrainingCheckpoint, loadTrainingCheckpoint, resolveCheckpoint } from './checkpoint.ts';

/** PS table id of the pure-PS dense vector (model tables take 1..T). */
export const DENSE_TABLE_ID = 1000;
/** Floats per row of the dense range table. */
export const DENSE_BLOCK = 1024;

export interface WorkerIdentity {
  nodeId: string; schedulerUrl: string; secret: Uint8Array;
  /** TLS credentials for the links to the scheduler and servers and the ring (mutual TLS); absent: plain. */
  tls?: TlsCredentials;
  /** Subscribes to checkpoint requests from the launcher: each names a step every worker has yet to finish. */
  onCheckpointRequest?: (listener: (step: number) => void) => void;
  /** Where the hybrid mode's ring listener listens (and so what it announces); default 127.0.0.1, any port. */
  host?: string; port?: number;
  /** host:port the other workers reach the ring listener at, announced instead of where it listens (a proxy in between). */
  advertise?: string;
}

export interface WorkerProgress {
  rank: number; step: number; loss: number; samples: number; wallSec: number;
  bytes: { pull: number; push: number; allreduce: number };
  ms: Record<string, number>;
}

export interface WorkerResult {
  /** The model module's name. */
  model: string;
  rank: number; nodeId: string; steps: number; firstStep: number; samples: number; wallSec: number;
  /** Seconds of `wallSec` spent in periodic held-out evaluations (rank 0 alone evaluates); training time is the rest. */
  evalSec: number;
  /** Bytes of training on the wire; the evaluations' pulls are left out. */
  bytes: { pull: number; push: number; allreduce: number };
  /** Summed milliseconds per phase over all steps. */
  phaseMs: Record<string, number>;
  /** sha256 of the final dense parameters: equal on every worker in hybrid mode. */
  denseHash: string;
  /** What this worker read of the training data ('bytes': its own share; 'stream': the whole file). */
  data: DataStats;
  eval?: EvalResult;
  checkpoint?: string;
  /** The row caches' counters summed over tables (absent: no table was cached). */
  cache?: RowCacheStats;
  /** Hot rows held on this worker, over all tables (absent: off), and the sha256 of their keys and state: equal on every worker. */
  hotRows?: number;
  hotHash?: string;
}

export type { EvalResult } from './evaluate.ts';

/** What a worker reports while it trains (rank 0 alone evaluates and checkpoints). */
export type WorkerEvent =
  | { kind: 'progress'; progress: WorkerProgress }
  | { kind: 'eval'; eval: EvalResult }
  | { kind: 'checkpoint'; step: number; dir: string }
  | { kind: 'result'; result: WorkerResult };

function denseOptimizer(cfg: TrainConfig): DenseOptimizer {
  return { kind: cfg.optimizer.dense, lr: cfg.lr.dense };
}

export async function runTrainWorker(cfg: TrainConfig, id: WorkerIdentity, report: (e: WorkerEvent) => void = () => {}): Promise<WorkerResult> {
  const log = createLogger(id.nodeId);
  const gpu = await acquireGpu({ label: id.nodeId });
  const mod = await loadModelModule(cfg.modelModule);
  checkModelConfig(mod, cfg.model);
  const spec = mod.spec(cfg.model, {
    optimizer: cfg.optimizer.emb, hyper: cfg.optimizer.emb === 'ftrl' ? { alpha: cfg.lr.emb } : { lr: cfg.lr.emb },
    consistency: cfg.consistency.kind, staleness: cfg.consistency.staleness,
  });
  // The same seed on every worker: identical initial dense parameters without a broadcast.
  const runner = await ModelRunner.create(gpu, spec, { seed: cfg.seed });
  const ring = cfg.mode === 'hybrid' ? await DenseAllreduce.create({ nodeId: id.nodeId, secret: id.secret, tls: id.tls, host: id.host, port: id.port }, { f16: cfg.wireRows === 'f16' }) : null;
  // Announced: where the ring listens, or the address peers reach it at (--advertise: a proxy in between).
  const address = ring ? (id.advertise ? ring.url.replace(/\/\/.*$/, `//${id.advertise}`) : ring.url) : '';
  const client = await PSClient.connect({ secret: id.secret, tls: id.tls, schedulerUrl: id.schedulerUrl, nodeId: id.nodeId, address, format: cfg.wireRows });
  ring?.attach(client);
  let data: ThreadedBatches | undefined;
  try {
    await client.waitForView((v) => v.servers.length >= cfg.servers && v.workers.length >= cfg.workers && client.rank >= 0, 120_000);
    if (ring) await client.waitForView((v) => v.workersEpoch === ring.ring.ringEpoch, 30_000);
    const rank = client.rank, workers = client.view.workers.length;
    log.info('joined', { rank, workers, servers: client.view.servers.length, mode: cfg.mode, consistency: cfg.consistency.kind, adapter: gpu.adapterName });

    const { specs, tableIds } = psTableSpecs(spec, 1, BigInt(cfg.seed));
    if (cfg.mode === 'pure-ps') {
      specs.push(psDenseTableSpec(DENSE_TABLE_ID, DENSE_BLOCK, {
        optimizer: cfg.optimizer.dense, hyper: { lr: cfg.lr.dense }, consistency: cfg.consistency.kind,
      }));
      specs[specs.length - 1]!.staleness = cfg.consistency.staleness;
    }
    await client.declareTables(specs);

    // Resume (rank 0 restores the servers; every worker loads the dense parameters), or seed the
    // pure-PS dense table with the initial parameters.
    const shapes = denseShapes(spec);
    const layout = runner.denseLayout().map((p, i) => ({ ...p, shape: shapes[i]! }));
    let firstStep = 0, dataResume: DataResume | undefined;
    if (cfg.resume) {
      const ckpt = await resolveCheckpoint(cfg.resume);
      const loaded = await loadTrainingCheckpoint(ckpt, layout, cfg, await runner.readDense(), mod.name);
      firstStep = loaded.step;
      dataResume = { cursor: loaded.data, workers: loaded.workers, batch: loaded.batch };
      if (loaded.dense) runner.setDense(loaded.dense);
      if (loaded.fresh.length) log.warn('dense parameters not in the checkpoint, initialised fresh (--partial-dense)', { params: loaded.fresh });
      if (loaded.optimizer && cfg.mode === 'hybrid') runner.setOptimizerState(loaded.optimizer);
      if (rank === 0) {
        const rows = await client.restore(ckpt);
        log.info('resumed', { from: ckpt, step: firstStep, rows, dense: loaded.dense ? 'from checkpoint' : 'initial' });
        if (cfg.mode === 'pure-ps' && !loaded.denseOnServers) await client.assignRange(DENSE_TABLE_ID, 0, await runner.readDense());
      }
    } else if (cfg.mode === 'pure-ps' && rank === 0) {
      await client.assignRange(DENSE_TABLE_ID, 0, await runner.readDense());
    }
    await client.barrier('start');

    const dense: DenseMode = cfg.mode === 'pure-ps'
      ? { mode: 'ps', tableId: DENSE_TABLE_ID }
      : { mode: 'local', optimizer: denseOptimizer(cfg), hook: workers > 1 ? ring!.hook() : undefined };
    const globalBatch = cfg.batch * workers;
    // Read and parsed in a thread of its own (data-thread.ts): the main thread runs the step.
    const source = data = trainBatchesInThread(cfg, { rank, workers, skipSteps: firstStep, resume: dataResume, log: (level, msg, fields) => log[level](msg, fields) });
    const batches = source.batches[Symbol.asyncIterator]();
    // Hot rows: rank 0 reads its first batches ahead (trained on next, from this buffer) to count their ids.
    const first: Minibatch[] = [];
    const stepsLeft = cfg.steps > 0 ? cfg.steps - firstStep : Infinity;
    if (hotBudget(cfg) > 0 && rank === 0) {
      for (let r = await batches.next(); !r.done; r = await batches.next()) if (first.push(r.value) >= Math.min(hotChoiceBatches(hotBudget(cfg), cfg.batch), stepsLeft)) break;
    }
    const hot = await setupHotRows({ budget: hotBudget(cfg), spec, client, tableIds, rank, workers, ring, first: first.map((mb) => modelBatch(mod, cfg.model, mb).tables) });
    if (hot) log.info('hot rows', { rows: hot.rows, perTable: hotBudget(cfg), choseFrom: `${first.length} batches of rank 0` });
    const stepper = new WorkerStep({ client, runner, tableIds, globalBatch, dense, pipeline: cfg.pipeline, cache: { rows: cfg.cacheRows ?? 0, aspRefresh: cfg.cacheRefresh ?? 1 }, hot: hot ?? undefined });

    const denseAt = async (clock?: number) => (cfg.mode === 'pure-ps' ? client.pullRange(DENSE_TABLE_ID, 0, runner.denseLength, { clock }) : runner.readDense());
    const denseNow = () => denseAt();
    const held: EvalSource = {
      client, runner, tableIds, denseAt, hot: hot ?? undefined,
      batches: (limit) => evalBatchesInThread(cfg, 1024, limit), toBatch: (mb) => modelBatch(mod, cfg.model, mb),
    };
    // What evaluating costs is kept apart from training's numbers: a compare run evaluates about 10
    // times by default, and pure-PS evaluations also pull the dense vector.
    let evalMs = 0;
    const evalBytes = { pull: 0, push: 0 };
    const evaluate = async (step: number, limit: number): Promise<EvalResult> => {
      const t = performance.now(), pull0 = client.bytes.pull, push0 = client.bytes.push;
      const res = await evaluateHeldOut(held, step, limit);
      evalMs += performance.now() - t;
      evalBytes.pull += client.bytes.pull - pull0; evalBytes.push += client.bytes.push - push0;
      report({ kind: 'eval', eval: res });
      return res;
    };

    const checkpoint = async (step: number): Promise<string> => {
      // Everyone has clocked `step`, so the servers hold every update up to it (BSP: applied when
      // the last worker clocked; ASP/SSP: applied before the push was acknowledged).
      await client.barrier(`checkpoint-${step}`);
      let dir = '';
      if (rank === 0) {
        await hot?.writeTo(client, tableIds); // the table is whole on the servers again (every worker holds the same hot rows)
        dir = await saveTrainingCheckpoint({ client, cfg, modelName: mod.name, step, dense: await denseNow(), layout, workers,
          optimizer: cfg.mode === 'hybrid' ? await runner.readOptimizerState() : undefined, data: await source.cursor(step) });
        report({ kind: 'checkpoint', step, dir });
      }
      await client.barrier(`checkpoint-${step}-written`); // nobody changes a row before the files exist
      return dir;
    };

    const phaseMs: Record<string, number> = {};
    const t0 = performance.now();
    const bytes = () => ({ pull: client.bytes.pull - evalBytes.pull, push: client.bytes.push - evalBytes.push, allreduce: ring?.ring.stats.bytesSent ?? 0 });
    let step = firstStep, samples = 0, lastCheckpoint: string | undefined, lastCheckpointStep = -1;
    const requested = new Set<number>();
    id.onCheckpointRequest?.((s) => {
      if (!cfg.checkpointDir) { log.warn('checkpoint requested, but the run has no --checkpoint-dir'); return; }
      if (s > step) requested.add(s); else log.warn('checkpoint requested for a step already passed', { step: s, now: step });
    });
    // The next batch is read and parsed while this step waits on the GPU and the network; with
    // the pipeline it is also prepared (and pulled where consistency allows) during the GPU work.
    let read = batches.next(), taken = 0;
    const take = async (clock?: number): Promise<PreparedBatch | null> => {
      if (cfg.steps > 0 && firstStep + taken >= cfg.steps) return null;
      let mb = first.shift();
      if (!mb) {
        const r = await read;
        if (r.done) return null;
        mb = r.value;
        read = batches.next();
      }
      taken++;
      return stepper.prepare(modelBatch(mod, cfg.model, mb), clock);
    };
    // After an evaluation or a checkpoint step the next batch is prepared without early pulls:
    // their rows would be dropped unused (nothing read before a checkpoint is used after it), and
    // a pull creates the rows it reads, so the checkpoint would hold the next batch's new rows,
    // untrained, or not, by timing. (A checkpoint asked for by signal is not known ahead: its
    // early pulls are settled and dropped below.)
    const pausesAfter = (s: number) => (cfg.evalSteps > 0 && s % cfg.evalSteps === 0 && rank === 0)
      || (!!cfg.checkpointDir && ((cfg.checkpointEvery > 0 && s % cfg.checkpointEvery === 0) || requested.has(s)));
    let ahead: Promise<PreparedBatch | null> | null = null;
    for (;;) {
      const cur = await (ahead ?? take());
      ahead = null;
      if (!cur) break;
      const r = await stepper.run(cur, cfg.pipeline ? (clock) => { ahead = pausesAfter(step + 1) ? take() : take(clock); ahead.catch(() => {}); } : undefined);
      if (!Number.isFinite(r.loss)) throw new Error(`step ${step + 1}: the loss is ${r.loss}; lower --lr (emb ${cfg.lr.emb}, dense ${cfg.lr.dense})`);
      step++;
      samples += cur.batch.B;
      for (const [k, v] of Object.entries(r.ms)) phaseMs[k] = (phaseMs[k] ?? 0) + v;
      report({ kind: 'progress', progress: { rank, step, loss: r.loss, samples, wallSec: (performance.now() - t0 - evalMs) / 1000, bytes: bytes(), ms: { ...r.ms } } });
      if (cfg.evalSteps > 0 && step % cfg.evalSteps === 0 && rank === 0) {
        // Settle the next batch's early pulls first (dropping their rows), so none counts as the evaluation's.
        if (ahead) ahead = (ahead as Promise<PreparedBatch | null>).then((p) => p && stepper.withoutEarlyRows(p));
        await ahead;
        await evaluate(step, cfg.evalSamples);
      }
      if (cfg.checkpointDir && ((cfg.checkpointEvery > 0 && step % cfg.checkpointEvery === 0) || requested.delete(step))) {
        // Drain: no early pull straddles the checkpoint (the next step pulls after it).
        if (ahead) ahead = (ahead as Promise<PreparedBatch | null>).then((p) => p && stepper.withoutEarlyRows(p));
        await ahead;
        lastCheckpoint = await checkpoint(step);
        lastCheckpointStep = step;
      }
    }
    read.catch(() => {});
    void batches.return?.(undefined);
    // The final evaluation comes after `wallSec`, so only the evaluations before it are part of it (a
    // 1-worker run counted the final one too, and its training time came out <= 0).
    const wallSec = (performance.now() - t0) / 1000, evalSec = evalMs / 1000;
    await client.barrier('trained');
    if (cfg.checkpointDir && lastCheckpointStep !== step) lastCheckpoint = await checkpoint(step);
    else if (rank === 0) await hot?.writeTo(client, tableIds); // the servers hold the trained model at the end
    const final = rank === 0 ? await evaluate(step, Number.MAX_SAFE_INTEGER) : undefined;
    const denseFinal = await denseNow();
    const result: WorkerResult = {
      model: mod.name, rank, nodeId: id.nodeId, steps: step - firstStep, firstStep, samples, wallSec, evalSec, bytes: bytes(), phaseMs,
      denseHash: createHash('sha256').update(Buffer.from(denseFinal.buffer, denseFinal.byteOffset, denseFinal.byteLength)).digest('hex'),
      data: source.stats(), eval: final, checkpoint: rank === 0 ? lastCheckpoint || undefined : undefined,
    };
    const cacheStats = stepper.cacheStats();
    if (cacheStats) result.cache = { hits: cacheStats.hits, misses: cacheStats.misses, evictions: cacheStats.evictions, bytesSaved: cacheStats.bytesSaved };
    if (hot) { result.hotRows = hot.rows; result.hotHash = hotRowsDigest(hot, spec.tables.length); }
    report({ kind: 'result', result });
    await client.barrier('done');
    return result;
  } finally {
    await data?.close();
    await client.close().catch(() => {});
    await ring?.close().catch(() => {});
    runner.destroy();
    await gpu.destroy();
  }
}
