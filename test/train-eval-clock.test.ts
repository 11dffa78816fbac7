// `--eval-every` under BSP with several workers: rank 0 evaluates right after its own clock, and
// the held-out score for "step k" must come from the parameters after every worker's step k. A
// real server on loopback, two real clients and the real model on lavapipe: worker 1 has pushed
// its step but not clocked when rank 0 evaluates, so the servers have not applied the step yet.
// The evaluation must wait for that step (its pulls park on the server) and then equal a score
// taken once everything is applied; the old code pulled without a clock and scored the
// parameters before the step.
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { gpuSuite, finishGpuTests } from './helpers/gpu.ts';
import { startCluster, allJoined } from './helpers/cluster.ts';
import { tmp, writeRandomCriteo, tinyConfig } from './helpers/train.ts';
import { ModelRunner } from '../src/model/model-runner.ts';
import { dlrmSpec } from '../src/model/dlrm.ts';
import { prepareTable } from '../src/model/batch-prep.ts';
import { psTableSpecs } from '../src/worker/worker-step.ts';
import { evalBatches, modelBatch } from '../src/train/batches.ts';
import { model as dlrm } from '../src/model/dlrm-model.ts';
import { evaluateHeldOut, type EvalSource } from '../src/train/evaluate.ts';
import type { PSClient } from '../src/client/ps-client.ts';

const s = gpuSuite('held-out evaluation at the worker clock');
const dir = tmp();

s('BSP: rank 0 scores step 1 only after every worker\'s step 1 is applied', async (ctx) => {
  const cfg = tinyConfig(writeRandomCriteo(join(dir, 'train.tsv'), 300, 5), { evalEvery: 3, evalSamples: 100 });
  const spec = dlrmSpec(cfg.model, { optimizer: 'sgd', hyper: { lr: 0.5 }, consistency: 'bsp' });
  const cluster = await startCluster({ servers: 1 });
  const runner = await ModelRunner.create(ctx.gpu, spec, { seed: cfg.seed });
  try {
    const c0 = await cluster.client('worker-0'), c1 = await cluster.client('worker-1');
    await allJoined([c0, c1], 2);
    const [w0, w1] = c0.rank === 0 ? [c0, c1] : [c1, c0];
    const { specs, tableIds } = psTableSpecs(spec, 1, BigInt(cfg.seed));
    await Promise.all([w0.declareTables(specs), w1.declareTables(specs)]);
    const dense = await runner.readDense();
    const source = (client: PSClient): EvalSource => ({
      client, runner, tableIds, denseAt: async () => dense,
      batches: (limit) => evalBatches(cfg, 1024, limit), toBatch: (mb) => modelBatch(dlrm, cfg.model, mb),
    });
    const before = await evaluateHeldOut(source(w0), 0, cfg.evalSamples);

    // Step 1: both workers push gradients for every held-out row; only rank 0 clocks.
    const keys: BigUint64Array[] = tableIds.map(() => new BigUint64Array(0));
    for await (const mb of evalBatches(cfg, 1024, cfg.evalSamples)) {
      const wb = modelBatch(dlrm, cfg.model, mb);
      wb.tables.forEach((t, i) => { keys[i] = prepareTable(t, wb.B).keys; });
    }
    for (const w of [w0, w1]) {
      await Promise.all(tableIds.map((id, i) => w.push(id, keys[i]!, new Float32Array(keys[i]!.length * cfg.model.dim).map(() => ctx.rand() * 2 - 1))));
    }
    await w0.clock();
    const scored = evaluateHeldOut(source(w0), 1, cfg.evalSamples);
    let settled = false;
    void scored.then(() => { settled = true; }, () => { settled = true; });
    // Worker 1 clocks once rank 0's evaluation has either finished (the old behaviour) or is
    // parked on the server waiting for step 1 (hang guard 60 s).
    for (const t0 = Date.now(); !settled && cluster.servers[0]!.metricsSource().gauges!().waitingPulls === 0;) {
      if (Date.now() - t0 > 60_000) throw new Error('the evaluation neither finished nor waited on the server');
      await new Promise((r) => setTimeout(r, 5));
    }
    await w1.clock();
    const got = await scored;
    const after = await evaluateHeldOut(source(w1), 1, cfg.evalSamples); // w1 at clock 1: everything applied
    assert.ok(before.logloss !== after.logloss, 'the step changes the held-out score (else the test shows nothing)');
    assert.is(got.samples, after.samples);
    assert.is(got.logloss, after.logloss, `step 1 scored ${got.logloss}; the parameters after step 1 score ${after.logloss} (before it: ${before.logloss})`);
    assert.is(got.auc, after.auc);
  } finally {
    runner.destroy();
    await cluster.close();
  }
});

s.run();
finishGpuTests();
