// Each worker reads only its share of the data (the default --data-split bytes): two GPU workers
// as real processes over a file with bad lines planted in both halves. Each worker parses about
// half of the training lines (counted in the summary), the bad lines are reported once, with the
// file's own line numbers, and a run stopped at step 3 and resumed to step 6 gives bit-identical
// parameters to an uninterrupted 6-step run (the resumed workers continue at the same sample).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { runTraining } from '../src/launch/train-run.ts';
import { tmp, writeRandomCriteo, tinyConfig, readTrainingCheckpoint, maxDiff, type DlrmTrainConfig } from './helpers/train.ts';

const dir = tmp();
const data = writeRandomCriteo(join(dir, 'train.tsv'), 400, 31);
const BAD = [17, 333]; // 1-based line numbers: one in each worker's half
const lines = readFileSync(data, 'utf8').split('\n');
for (const n of BAD) lines[n - 1] = lines[n - 1]!.replace(/^[01]/, '7');
writeFileSync(data, lines.join('\n'));
const quiet = { write: () => true } as unknown as NodeJS.WritableStream;

async function run(over: Partial<DlrmTrainConfig>) {
  const cfg = tinyConfig(data, { workers: 2, servers: 2, batch: 8, dataSplit: 'bytes', optimizer: { emb: 'adagrad', dense: 'adagrad' }, lr: { emb: 0.1, dense: 0.05 }, ...over });
  const s = await runTraining(cfg, { out: quiet });
  return { s, ckpt: await readTrainingCheckpoint(s.checkpoint!, cfg) };
}

test('each worker parses its half; bad lines keep their line numbers', async () => {
  const { s } = await run({ steps: 0, epochs: 1, checkpointDir: join(dir, 'epoch') });
  const train = 400 - 40; // every 10th line is held out
  assert.is(s.data.split, 'bytes');
  assert.is(s.data.parsedPerWorker.length, 2);
  for (const p of s.data.parsedPerWorker) assert.ok(p > 0.4 * train && p < 0.6 * train, `parsed ${s.data.parsedPerWorker} of ${train} training lines`);
  assert.ok(s.data.parsedPerWorker[0]! + s.data.parsedPerWorker[1]! <= train, 'no line parsed twice');
  assert.is(s.data.lines, 400);
  assert.is(s.data.bad, 2);
  assert.equal(s.data.badLines.map((b) => b.line), BAD);
  assert.match(s.data.badLines[0]!.why, /label/);
  // Steps per epoch: the smaller share's training lines / batch, the same on both workers.
  assert.ok(s.steps >= 20 && s.steps <= 23, `steps ${s.steps}`);
  // No evaluation during training (only the final one, after the training time): none counted in it.
  for (const r of s.results) assert.is(r.evalSec, 0, `rank ${r.rank}: evalSec`);
});

test('resume continues at the same sample: 3 + 3 steps equal 6', async () => {
  const full = await run({ steps: 6, checkpointDir: join(dir, 'full') });
  const first = await run({ steps: 3, checkpointDir: join(dir, 'part') });
  assert.is(first.ckpt.step, 3);
  const resumed = await run({ steps: 6, resume: join(dir, 'part'), checkpointDir: join(dir, 'part') });
  assert.is(resumed.ckpt.step, 6);
  assert.is(maxDiff(full.ckpt, resumed.ckpt), 0);
  assert.ok(maxDiff(full.ckpt, first.ckpt) > 0, 'the last 3 steps changed the parameters');
});

test.run();
