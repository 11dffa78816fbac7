// End to end, separate processes (scheduler, servers, GPU workers on lavapipe): under BSP with
// plain SGD, W = 2 workers at batch b give the same parameters as W = 1 at batch 2b, in hybrid
// mode (dense part by ring-allreduce) and in pure-PS mode (dense part on the servers), and all of
// them equal a float64 CPU DLRM trained on the same global batches.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { runTraining } from '../src/launch/train-run.ts';
import { trainBatches, modelBatch } from '../src/train/batches.ts';
import { model as dlrm } from '../src/model/dlrm-model.ts';
import { dlrmSpec } from '../src/model/dlrm.ts';
import { initDense } from '../src/model/model-runner.ts';
import { psTableSpecs } from '../src/worker/worker-step.ts';
import { prepareTable } from '../src/model/batch-prep.ts';
import { makeRowInitializer } from '../src/server/initializers.ts';
import { dlrmCpuStep } from './model-dlrm-cpu.ts';
import { tmp, writeRandomCriteo, tinyConfig, readTrainingCheckpoint, maxDiff, type CheckpointContents } from './helpers/train.ts';
import type { DlrmTrainConfig as TrainConfig } from './helpers/train.ts';

const dir = tmp();
const data = writeRandomCriteo(join(dir, 'train.tsv'), 400, 11);
const STEPS = 4, B = 8;
const quiet = { write: () => true } as unknown as NodeJS.WritableStream;

async function train(over: Partial<TrainConfig>, name: string): Promise<{ ckpt: CheckpointContents; hashes: string[] }> {
  const cfg = tinyConfig(data, { steps: STEPS, checkpointDir: join(dir, name), ...over });
  const s = await runTraining(cfg, { out: quiet });
  assert.is(s.steps, STEPS);
  assert.ok(s.checkpoint, 'a final checkpoint');
  assert.ok(Number.isFinite(s.auc) && Number.isFinite(s.logloss));
  return { ckpt: await readTrainingCheckpoint(s.checkpoint!, cfg), hashes: s.results.map((r) => r.denseHash) };
}

/** The float64 reference: one process, global batches of 2b, SGD on rows and dense parameters. */
async function reference(cfg: TrainConfig): Promise<CheckpointContents> {
  const spec = dlrmSpec(cfg.model);
  const dense = Float64Array.from(initDense(spec, cfg.seed));
  const { specs } = psTableSpecs(spec, 1, BigInt(cfg.seed));
  const rows = specs.map(() => new Map<number, Float64Array>());
  const inits = specs.map((s) => makeRowInitializer({ init: s.init as 'uniform', scale: s.initScale, seed: s.seed }));
  const row = (t: number, id: number) => {
    let r = rows[t]!.get(id);
    if (!r) { const f = new Float32Array(cfg.model.dim); inits[t]!(f, 0, cfg.model.dim, id, 0); rows[t]!.set(id, (r = Float64Array.from(f))); }
    return r;
  };
  let steps = 0;
  for await (const mb of trainBatches(cfg, { rank: 0, workers: 1, skipSteps: 0 }).batches) {
    if (steps++ >= STEPS) break;
    const wb = modelBatch(dlrm, cfg.model, mb);
    const tables = wb.tables.map((t, ti) => {
      const prep = prepareTable(t, wb.B);
      const vals = new Float64Array(prep.unique.length * cfg.model.dim);
      prep.unique.forEach((id, u) => vals.set(row(ti, id), u * cfg.model.dim));
      return { prep, rows: vals };
    });
    const g = dlrmCpuStep(cfg.model, dense, wb.inputs.dense_x!, wb.inputs.labels!, wb.B, tables);
    for (let i = 0; i < dense.length; i++) dense[i] -= cfg.lr.dense * g.denseGrads[i]!;
    tables.forEach((t, ti) => t.prep.unique.forEach((id, u) => {
      const r = row(ti, id);
      for (let j = 0; j < r.length; j++) r[j] -= cfg.lr.emb * g.tableGrads[ti]![u * cfg.model.dim + j]!;
    }));
  }
  const out: CheckpointContents = { step: STEPS, dense: Float32Array.from(dense), tables: new Map() };
  specs.forEach((s, t) => out.tables.set(s.name, new Map([...rows[t]!].map(([id, r]) => [BigInt(id), Float32Array.from(r)]))));
  return out;
}

test('BSP: hybrid W=2, pure-PS W=2 and W=1 at twice the batch train identical parameters, equal to float64 SGD', async () => {
  const one = await train({ workers: 1, batch: 2 * B, servers: 1 }, 'w1');
  const hybrid = await train({ workers: 2, batch: B, servers: 2, mode: 'hybrid' }, 'hybrid');
  const pureps = await train({ workers: 2, batch: B, servers: 2, mode: 'pure-ps' }, 'pureps');
  assert.is(new Set(hybrid.hashes).size, 1, 'hybrid workers hold identical dense parameters');
  const ref = await reference(tinyConfig(data, { workers: 1, batch: 2 * B }));
  // f32 on the GPU and the servers against float64, 4 steps of SGD: 1e-4 absolute.
  for (const [name, run] of [['W=1', one], ['hybrid W=2', hybrid], ['pure-PS W=2', pureps]] as const) {
    const d = maxDiff(ref, run.ckpt);
    assert.ok(d < 1e-4, `${name} differs from the float64 reference by ${d}`);
    assert.ok(maxDiff(run.ckpt, ref) < 1e-4, `${name} has rows the reference does not`);
  }
  // And with each other (they run the same f32 math in different orders).
  assert.ok(maxDiff(one.ckpt, hybrid.ckpt) < 1e-5, `hybrid vs W=1: ${maxDiff(one.ckpt, hybrid.ckpt)}`);
  assert.ok(maxDiff(one.ckpt, pureps.ckpt) < 1e-5, `pure-PS vs W=1: ${maxDiff(one.ckpt, pureps.ckpt)}`);
});

test('BSP with hot rows (--hot-rows 8): hybrid W=2 still equals float64 SGD', async () => {
  const hot = await train({ workers: 2, batch: B, servers: 2, mode: 'hybrid', hotRows: 8 }, 'hybrid-hot');
  assert.is(new Set(hot.hashes).size, 1, 'hybrid workers hold identical dense parameters');
  const ref = await reference(tinyConfig(data, { workers: 1, batch: 2 * B }));
  const d = maxDiff(ref, hot.ckpt);
  assert.ok(d < 1e-4 && maxDiff(hot.ckpt, ref) < 1e-4, `hybrid W=2 with hot rows differs from the float64 reference by ${d}`);
});

test.run();
