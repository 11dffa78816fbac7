// The training loop with the pipelined step (the default) against --no-pipeline: a BSP run of two
// hybrid workers that checkpoints mid-run ends with the same dense parameters (sha256 per worker),
// loss history, checkpoint contents and held-out logloss; and resuming the pipelined run from its
// mid-run checkpoint ends where the uninterrupted run did.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { runTraining } from '../src/launch/train-run.ts';
import { tmp, tinyConfig, writeRandomCriteo, readTrainingCheckpoint } from './helpers/train.ts';

const dir = tmp();
const quiet = { write: () => true } as unknown as NodeJS.WritableStream;
const data = writeRandomCriteo(join(dir, 'train.tsv'), 600, 9);
const base = (name: string, pipeline: boolean) => tinyConfig(data, {
  workers: 2, servers: 2, steps: 8, checkpointEvery: 4, checkpointDir: join(dir, name), pipeline, optimizer: { emb: 'adagrad', dense: 'sgd' },
});

test('BSP: pipelined and serial training agree bit for bit, across a mid-run checkpoint and a resume', async () => {
  const serial = await runTraining(base('serial', false), { out: quiet });
  const piped = await runTraining(base('piped', true), { out: quiet });
  assert.equal(piped.results.map((r) => r.denseHash).sort(), serial.results.map((r) => r.denseHash).sort(), 'dense parameters');
  assert.equal(piped.history.loss, serial.history.loss, 'loss per step');
  assert.is(piped.logloss, serial.logloss, 'held-out logloss');
  const cs = await readTrainingCheckpoint(join(dir, 'serial', 'step-4'), base('serial', false));
  const cp = await readTrainingCheckpoint(join(dir, 'piped', 'step-4'), base('piped', true));
  assert.equal(Array.from(cp.dense), Array.from(cs.dense), 'checkpointed dense');
  for (const [name, rows] of cs.tables) for (const [k, v] of rows) assert.equal(Array.from(cp.tables.get(name)!.get(k)!), Array.from(v), `${name}[${k}]`);

  const resumed = await runTraining({ ...base('resumed', true), resume: join(dir, 'piped', 'step-4') }, { out: quiet });
  assert.equal(resumed.results.map((r) => r.denseHash).sort(), piped.results.map((r) => r.denseHash).sort(), 'resumed dense parameters');
  assert.is(resumed.logloss, piped.logloss, 'resumed held-out logloss');
});

test.run();
