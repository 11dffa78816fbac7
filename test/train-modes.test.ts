// SSP and ASP training runs converge on planted synthetic data, in both layouts, and in hybrid
// mode every worker ends with bit-identical dense parameters after many allreduce steps.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { runTraining } from '../src/launch/train-run.ts';
import { generateSynthetic } from '../src/data/synthetic.ts';
import { parseConsistency } from '../src/train/config.ts';
import { tmp, tinyConfig } from './helpers/train.ts';

const dir = tmp();
const quiet = { write: () => true } as unknown as NodeJS.WritableStream;
const ROWS = 50;
let data = '';
let planted = 0;

test.before(async () => {
  data = join(dir, 'synthetic.tsv');
  planted = (await generateSynthetic({ out: data, samples: 20_000, seed: 3, rowsPerTable: ROWS })).plantedAuc;
});

// Every categorical feature, narrow embeddings: small enough for lavapipe, able to learn the planted model.
const model = { numTables: 26, dim: 4, bottom: [13, 16, 4], top: [16, 1], rowsPerTable: ROWS };
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

for (const [consistency, mode, workers] of [['ssp:2', 'hybrid', 3], ['asp', 'pure-ps', 2]] as const) {
  test(`${consistency} ${mode} with ${workers} workers converges`, async () => {
    const cfg = tinyConfig(data, {
      model: { ...tinyConfig(data).model, ...model }, workers, servers: 2, batch: 64, steps: 0, epochs: 1, mode,
      consistency: parseConsistency(consistency), optimizer: { emb: 'adagrad', dense: 'adagrad' }, lr: { emb: 0.05, dense: 0.05 },
      evalSamples: 2000,
    });
    const s = await runTraining(cfg, { out: quiet });
    const steps = Math.floor(18_000 / (64 * workers));
    assert.is(s.steps, steps, 'one epoch of global batches');
    const losses = s.history.loss;
    const first = mean(losses.slice(0, 10)), last = mean(losses.slice(-10));
    assert.ok(last < first - 0.02, `loss fell: ${first.toFixed(4)} -> ${last.toFixed(4)}`);
    assert.ok(s.auc > 0.7 && s.auc <= planted + 0.01, `held-out AUC ${s.auc.toFixed(4)} (planted ${planted.toFixed(4)})`);
    if (mode === 'hybrid') {
      assert.is(s.results.length, workers);
      assert.is(new Set(s.results.map((r) => r.denseHash)).size, 1, `dense parameters identical on all ${workers} workers after ${steps} steps`);
      assert.ok(s.bytes.allreduce > 0);
    } else {
      assert.is(s.bytes.allreduce, 0, 'pure-PS moves nothing through the ring');
    }
  });
}

test.run();
