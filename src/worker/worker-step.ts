// One training step of a worker: prep the batch (unique ids, inverse index, CSR per table), pull
// the unique rows from the parameter servers at the worker's clock, run upload + forward +
// backward on the GPU (ModelRunner: one submit, one wait), download only the touched rows'
// gradients and the dense gradients, push the row gradients, hand the dense gradient to a hook
// (allreduce in hybrid mode), apply the dense update (locally on the GPU: inside this step's
// encoder without a hook, inside the next one's with it; or through the servers as a range table
// in pure-PS mode), then advance the clock.
//
// Gradient scale: the GPU gives gradients of the local batch mean; they are pushed as
// (sum over local samples) / globalBatch, so under BSP the servers' sum over workers is exactly
// the gradient of the global batch mean and the update equals single-process minibatch SGD.
import type { PSClient } from '../client/ps-client.ts';
import type { TableSpecMsg } from '../wire/codec.ts';
import type { ModelRunner, DenseOptimizer } from '../model/model-runner.ts';
import type { ModelSpec, TableDecl, ConsistencyName, OptimizerName } from '../model/model-spec.ts';
import { consistencyCode } from '../wire/vocabulary.ts';
import { prepareTable, type TableBatch } from '../model/batch-prep.ts';

export interface WorkerBatch {
  B: number;
  /** The spec's per-step inputs (dense features, labels, ...). */
  inputs: Record<string, Float32Array>;
  /** Ids per table, in spec order. */
  tables: TableBatch[];
}

/** Dense-gradient hook: receives this worker's scaled dense gradient; returns the combined one. */
export type DenseHook = (grads: Float32Array) => Promise<Float32Array | void>;

export type DenseMode =
  /** Hybrid / single worker: the hook (e.g. ring-allreduce, summing) then a local GPU optimizer. */
  | { mode: 'local'; optimizer: DenseOptimizer; hook?: DenseHook }
  /** Pure PS: dense parameters are a range table on the servers, pulled and pushed each step. */
  | { mode: 'ps'; tableId: number };

export interface WorkerStepOptions {
  client: PSClient;
  runner: ModelRunner;
  /** PS table id of each spec table (spec order). */
  tableIds: number[];
  /** Sum of all workers' batch sizes in one clock. */
  globalBatch: number;
  dense: DenseMode;
}

export interface StepPhases {
  prep: number;
  pull: number;
  upload: number;
  compute: number;
  download: number;
  push: number;
  dense: number;
}

export interface WorkerStepResult {
  loss: number;
  /** The clock this step ran at. */
  clock: number;
  ms: StepPhases;
}

/** The PS table spec of a model table. */
export function psTableSpec(t: TableDecl, id: number, seed: bigint): TableSpecMsg {
  return {
    id, name: t.name, dim: t.dim, init: t.init, initScale: t.initScale, seed, optimizer: t.optimizer,
    hyper: t.hyper, consistency: consistencyCode(t.consistency), staleness: t.staleness ?? 0,
  };
}

/** PS specs for every table of the model, ids firstId, firstId+1, ... */
export function psTableSpecs(spec: ModelSpec, firstId = 1, seed = 7n): { specs: TableSpecMsg[]; tableIds: number[] } {
  const specs = spec.tables.map((t, i) => psTableSpec(t, firstId + i, seed + BigInt(i)));
  return { specs, tableIds: specs.map((s) => s.id) };
}

/**
 * The range table holding the dense vector in pure-PS mode (rows of `block` floats). The caller
 * pushes the initial values once (e.g. `initDensePs`) since range rows start from the initializer.
 */
export function psDenseTableSpec(id: number, block: number, opt: { optimizer: OptimizerName; hyper: Record<string, number>; consistency?: ConsistencyName }): TableSpecMsg {
  return {
    id, name: 'dense_params', dim: block, init: 'zeros', initScale: 0, seed: 0n, optimizer: opt.optimizer, hyper: opt.hyper,
    consistency: consistencyCode(opt.consistency ?? 'bsp'), staleness: 0,
  };
}

const now = () => performance.now();

export class WorkerStep {
  constructor(readonly opts: WorkerStepOptions) {
    const n = opts.runner.spec.tables.length;
    if (opts.tableIds.length !== n) throw new Error(`worker step: ${opts.tableIds.length} table ids for ${n} model tables`);
    if (!(opts.globalBatch > 0)) throw new Error(`worker step: globalBatch ${opts.globalBatch}`);
  }

  async run(batch: WorkerBatch): Promise<WorkerStepResult> {
    const { client, runner, tableIds, globalBatch, dense } = this.opts;
    const spec = runner.spec;
    const clock = client.clockValue;
    const t0 = now();
    if (batch.tables.length !== spec.tables.length) throw new Error(`worker step: batch has ${batch.tables.length} tables, model ${spec.tables.length}`);
    const preps = batch.tables.map((t) => prepareTable(t, batch.B));
    const t1 = now();

    // Pull every table's unique rows (and the dense vector in pure-PS mode) in parallel.
    const [rows, densePulled] = await Promise.all([
      Promise.all(preps.map((p, i) => client.pull(tableIds[i], p.keys, { clock }))),
      dense.mode === 'ps' ? client.pullRange(dense.tableId, 0, runner.denseLength, { clock }) : Promise.resolve(null),
    ]);
    if (densePulled) runner.setDense(densePulled);
    const t2 = now();

    // Local batch mean -> (local sum) / global batch.
    const scale = batch.B / globalBatch;
    // Without a hook nothing combines the dense gradient: the update runs inside this step's
    // encoder (one submit per step). With one, it is staged and runs inside the next step's.
    const fused = dense.mode === 'local' && !dense.hook;
    const r = await runner.step(
      { B: batch.B, inputs: batch.inputs, tables: preps.map((prep, i) => ({ prep, rows: rows[i] })) },
      fused ? { denseUpdate: { ...dense.optimizer, gradScale: scale * (dense.optimizer.gradScale ?? 1) } } : {},
    );

    const t3 = now();
    try {
      // The row gradients are views of the runner's mapped readback memory: scaled in place,
      // pushed, then released.
      await Promise.all(preps.map((p, i) => {
        const g = r.tableGrads[i];
        if (scale !== 1) for (let j = 0; j < g.length; j++) g[j] *= scale;
        return client.push(tableIds[i], p.keys, g, { clock });
      }));
    } finally {
      r.release();
    }
    const t4 = now();

    const dg = r.denseGrads;
    if (!fused && scale !== 1) for (let j = 0; j < dg.length; j++) dg[j] *= scale;
    if (dense.mode === 'ps') {
      await client.pushRange(dense.tableId, 0, dg, { clock });
    } else if (!fused) {
      const combined = (dense.hook ? await dense.hook(dg) : undefined) ?? dg;
      await runner.applyDenseUpdate(combined, dense.optimizer);
    }
    await client.clock();
    const t5 = now();
    return {
      loss: r.loss,
      clock,
      ms: { prep: t1 - t0, pull: t2 - t1, upload: r.ms.upload, compute: r.ms.compute, download: r.ms.download, push: t4 - t3, dense: t5 - t4 },
    };
  }
}
