// Checkpoints end to end: a BSP run stopped at step 3 and resumed (a new cluster, new processes)
// ends with exactly the parameters of an uninterrupted run: onto the same shape, onto a different
// number of servers, and onto a different number of workers (same global batch). AdaGrad on both
// parts, so optimizer state (server slots, the workers' dense accumulator) must survive too.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { runTraining } from '../src/launch/train-run.ts';
import { mkdirSync } from 'node:fs';
import { readManifest, writeSafetensors } from '../src/checkpoint/index.ts';
import { dlrmSpec } from '../src/model/dlrm.ts';
import { denseSizes } from '../src/model/model-spec.ts';
import { tmp, writeRandomCriteo, tinyConfig, readTrainingCheckpoint, maxDiff } from './helpers/train.ts';
import type { DlrmTrainConfig as TrainConfig } from './helpers/train.ts';

const dir = tmp();
const data = writeRandomCriteo(join(dir, 'train.tsv'), 400, 23);
const quiet = { write: () => true } as unknown as NodeJS.WritableStream;
const base = (over: Partial<TrainConfig>) => tinyConfig(data, {
  workers: 2, servers: 2, batch: 8, optimizer: { emb: 'adagrad', dense: 'adagrad' }, lr: { emb: 0.1, dense: 0.05 }, ...over,
});

async function run(over: Partial<TrainConfig>) {
  const cfg = base(over);
  const s = await runTraining(cfg, { out: quiet });
  return { s, ckpt: await readTrainingCheckpoint(s.checkpoint!, cfg) };
}

test('resume from a checkpoint equals an uninterrupted run (same shape, 3 servers, 1 worker at twice the batch)', async () => {
  const full = await run({ steps: 6, checkpointDir: join(dir, 'full') });
  assert.is(full.ckpt.step, 6);

  const first = await run({ steps: 3, checkpointDir: join(dir, 'part') });
  assert.is(first.s.checkpoint, join(dir, 'part', 'step-3'));
  assert.is(readFileSync(join(dir, 'part', 'latest'), 'utf8').trim(), 'step-3');
  const manifest = await readManifest(first.s.checkpoint!);
  assert.is(manifest.step, 3);
  assert.equal(manifest.cluster, { servers: 2, workers: 2, replicas: 1 });
  assert.ok(manifest.files.some((f) => f.path === 'dense.safetensors'));

  const same = await run({ steps: 6, resume: join(dir, 'part'), checkpointDir: join(dir, 'same') });
  assert.is(same.s.results[0]!.firstStep, 3, 'resumed at step 3');
  assert.is(same.s.steps, 3, 'ran the 3 remaining steps');
  assert.is(maxDiff(full.ckpt, same.ckpt), 0, 'same shape: bit-identical');
  assert.is(maxDiff(same.ckpt, full.ckpt), 0);

  const moreServers = await run({ steps: 6, servers: 3, resume: join(dir, 'part', 'step-3'), checkpointDir: join(dir, 'three') });
  assert.is(maxDiff(full.ckpt, moreServers.ckpt), 0, '3 servers: bit-identical (rows re-sharded, updates unchanged)');

  const oneWorker = await run({ steps: 6, workers: 1, batch: 16, resume: join(dir, 'part'), checkpointDir: join(dir, 'one') });
  const d = maxDiff(full.ckpt, oneWorker.ckpt);
  assert.ok(d < 1e-5, `1 worker at batch 16: within f32 rounding of the 2-worker run (${d})`);
  assert.ok(existsSync(join(dir, 'one', 'step-6', 'manifest.json')));
});

test('hot rows (--hot-rows): the checkpoint holds the whole table, equal to one written without; resuming from it continues exactly', async () => {
  // AdaGrad on the rows: the accumulators of the hot rows live on the workers between checkpoints.
  const off = await run({ steps: 6, hotRows: 0, checkpointEvery: 3, checkpointDir: join(dir, 'hot-off') });
  const on = await run({ steps: 6, hotRows: 8, checkpointEvery: 3, checkpointDir: join(dir, 'hot-on') });
  assert.ok(on.s.results.every((r) => (r.hotRows ?? 0) > 0), `every worker held hot rows: ${on.s.results.map((r) => r.hotRows)}`);
  assert.is(new Set(on.s.results.map((r) => r.hotHash)).size, 1, 'both workers hold the same hot keys, values, accumulators and update counts, bit for bit');
  const cfg = base({});
  const [off3, on3] = await Promise.all([readTrainingCheckpoint(join(dir, 'hot-off', 'step-3'), cfg), readTrainingCheckpoint(join(dir, 'hot-on', 'step-3'), cfg)]);
  // W = 2: the servers' f64 sum of two f32 gradients rounds to the ring's f32 sum: equal values expected.
  for (const [name, a, b] of [['step 3', on3, off3], ['step 6', on.ckpt, off.ckpt]] as const) {
    assert.ok(maxDiff(a, b) <= 1e-6 && maxDiff(b, a) <= 1e-6, `${name}: with hot rows vs without: ${maxDiff(a, b)}, without vs with: ${maxDiff(b, a)} (Infinity: rows missing)`);
  }
  // Resumed from the step-3 checkpoint written with hot rows: the hot rows (and their accumulators) come back from the servers.
  const resumed = await run({ steps: 6, hotRows: 8, resume: join(dir, 'hot-on', 'step-3'), checkpointDir: join(dir, 'hot-resumed') });
  assert.is(resumed.s.results[0]!.firstStep, 3);
  assert.ok(maxDiff(resumed.ckpt, off.ckpt) <= 1e-6 && maxDiff(off.ckpt, resumed.ckpt) <= 1e-6, `resumed with hot rows vs uninterrupted without: ${maxDiff(resumed.ckpt, off.ckpt)} / ${maxDiff(off.ckpt, resumed.ckpt)}`);
});

test('hot rows: held-out evaluation reads them from the workers\' copies (only the others are pulled) and scores as without them', async () => {
  // An evaluation at step 2, before any write-back of the hot rows (the servers' copies are stale then), and one at the end.
  const [off, on] = [await run({ steps: 3, hotRows: 0, evalSteps: 2, checkpointDir: join(dir, 'eval-off') }), await run({ steps: 3, hotRows: 8, evalSteps: 2, checkpointDir: join(dir, 'eval-on') })];
  assert.ok(on.s.evals.length === 2 && off.s.evals.length === 2 && on.s.evals[0]!.step === 2, `evaluations at steps ${on.s.evals.map((e) => e.step)} and ${off.s.evals.map((e) => e.step)}`);
  on.s.evals.forEach((evOn, k) => {
    const evOff = off.s.evals[k]!;
    assert.ok(evOn.samples > 0 && evOn.samples === evOff.samples, `evaluated ${evOn.samples} and ${evOff.samples} samples`);
    assert.ok(Math.abs(evOn.logloss - evOff.logloss) <= 1e-6 && Math.abs(evOn.auc - evOff.auc) <= 1e-6, `evaluation with hot rows ${JSON.stringify(evOn)} vs without ${JSON.stringify(evOff)}`);
  });
});

test('weights written by another tool (plain safetensors, no manifest) initialise a run', async () => {
  const foreign = join(dir, 'foreign');
  mkdirSync(foreign);
  const keys = BigUint64Array.from([0n, 1n, 2n, 3n, 39n]);
  const values = Float32Array.from({ length: keys.length * 4 }, (_, i) => (i % 7) * 0.125 - 0.4);
  await writeSafetensors(join(foreign, 'tables.safetensors'), {
    'emb0.keys': { dtype: 'U64', shape: [keys.length], data: keys },
    'emb0.values': { dtype: 'F32', shape: [keys.length, 4], data: values },
  });
  const bias = Float32Array.from([0.75]);
  await writeSafetensors(join(foreign, 'dense.safetensors'), { 'dense.top.1.bias': { dtype: 'F64', shape: [1], data: Float64Array.from(bias) } });
  // Only top.1.bias is given: --partial-dense starts the rest fresh. One step at a negligible learning rate: what is read back is what was imported.
  const r = await run({ steps: 1, workers: 1, servers: 2, resume: foreign, partialDense: true, checkpointDir: join(dir, 'imported'), lr: { emb: 1e-9, dense: 1e-9 }, optimizer: { emb: 'sgd', dense: 'sgd' } });
  const emb0 = r.ckpt.tables.get('emb0')!;
  keys.forEach((k, i) => {
    const row = emb0.get(k)!;
    for (let j = 0; j < 4; j++) assert.ok(Math.abs(row[j]! - values[i * 4 + j]!) < 1e-6, `emb0 row ${k}`);
  });
  const spec = dlrmSpec(base({}).model);
  const at = denseSizes(spec).find((p) => p.name === 'top.1.bias')!.offset;
  assert.ok(Math.abs(r.ckpt.dense[at]! - 0.75) < 1e-6, `top.1.bias ${r.ckpt.dense[at]}`);
});

test('a bad --resume path is a clear error', async () => {
  try {
    await runTraining(base({ steps: 1, resume: join(dir, 'nowhere') }), { out: quiet });
    assert.unreachable('should fail');
  } catch (e) {
    assert.match((e as Error).message, /--resume .*nowhere.*no manifest\.json, no latest file and no \.safetensors files/);
  }
});

test.run();
