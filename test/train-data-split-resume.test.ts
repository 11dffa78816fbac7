// Resume onto another worker count is sample-exact: two GPU workers (real processes) train 5 steps
// of an epoch over two files (a plain one and a BGZF one, with a bad line in each), checkpoint, and
// three workers resume and finish the epoch. The data layer's trace (HYBRIDPS_TRACE_SAMPLES) of
// the samples trained, over both runs, is exactly what the schedule promises, computed here from
// plain arrays: each old share's first 5 batches, then the first batches of three equal pieces of
// what was left; so no sample twice and none skipped but the last part-batches. The bad lines are
// reported with their own file's line numbers, by the worker that read them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { readFileSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { runTraining } from '../src/launch/train-run.ts';
import { bgzfCompress } from '../src/data/bgzf.ts';
import { tmp, writeRandomCriteo, tinyConfig, type DlrmTrainConfig } from './helpers/train.ts';

const dir = tmp();
const lines = readFileSync(writeRandomCriteo(join(dir, 'all.tsv'), 400, 47), 'utf8').trimEnd().split('\n');
const BAD = [17, 333]; // global 1-based: line 17 of the plain file, line 103 of the BGZF file
for (const n of BAD) lines[n - 1] = lines[n - 1]!.replace(/^[01]/, '7');
const plain = join(dir, 'part-0.tsv'), bgzf = join(dir, 'part-1.tsv.gz');
writeFileSync(plain, lines.slice(0, 230).join('\n') + '\n');
writeFileSync(bgzf, bgzfCompress(Buffer.from(lines.slice(230).join('\n') + '\n'), 4000));
const quiet = { write: () => true } as unknown as NodeJS.WritableStream;
const B = 8, EVERY = 10;

/** The trained samples of a run from its trace: the batches of steps up to the run's last. */
function traced(traceDir: string, lastStep: number): number[] {
  const out: number[] = [];
  for (const f of readdirSync(traceDir)) {
    for (const line of readFileSync(join(traceDir, f), 'utf8').trim().split('\n')) {
      const [step, ...idx] = line.split(' ').map(Number);
      if (step! <= lastStep) out.push(...idx);
    }
  }
  return out;
}

async function run(traceDir: string, over: Partial<DlrmTrainConfig>) {
  mkdirSync(traceDir);
  process.env.HYBRIDPS_TRACE_SAMPLES = traceDir;
  try {
    const cfg = tinyConfig(`${plain},${bgzf}`, { servers: 2, batch: B, dataSplit: 'bytes', evalEvery: EVERY, optimizer: { emb: 'adagrad', dense: 'adagrad' }, lr: { emb: 0.1, dense: 0.05 }, ...over });
    return await runTraining(cfg, { out: quiet });
  } finally {
    delete process.env.HYBRIDPS_TRACE_SAMPLES;
  }
}

test('2 workers for 5 steps, then 3 workers to the end of the epoch: each sample once', async () => {
  const ckpt = join(dir, 'ckpt');
  const first = await run(join(dir, 'trace-2'), { workers: 2, steps: 5, checkpointDir: ckpt });
  assert.is(first.steps, 5);
  const second = await run(join(dir, 'trace-3'), { workers: 3, steps: 0, epochs: 1, resume: ckpt, checkpointDir: ckpt });

  // The schedule from plain arrays: shares of 200 lines; 5 batches each; the rest in 3 equal pieces.
  const isTrain = (i: number) => i % EVERY !== EVERY - 1;
  const shares = [0, 1].map((r) => Array.from({ length: 200 }, (_, i) => 200 * r + i).filter(isTrain));
  const rest = shares.flatMap((s) => s.slice(5 * B));
  const pieces = [0, 1, 2].map((p) => rest.slice(Math.floor((p * rest.length) / 3), Math.floor(((p + 1) * rest.length) / 3)));
  const per = Math.floor(Math.min(...pieces.map((p) => p.length)) / B);
  assert.is(second.steps, per, 'the resumed run finishes the epoch');
  const bad = new Set(BAD.map((n) => n - 1));
  const expected = [...shares.flatMap((s) => s.slice(0, 5 * B)), ...pieces.flatMap((p) => p.slice(0, per * B))].filter((i) => !bad.has(i));
  const got = [...traced(join(dir, 'trace-2'), 5), ...traced(join(dir, 'trace-3'), 5 + per)];
  assert.is(new Set(got).size, got.length, 'no sample trained twice');
  assert.equal([...got].sort((a, b) => a - b), [...expected].sort((a, b) => a - b));

  // Bad lines: each reported once, by the run that read it, with its own file's line number.
  assert.equal(first.data.badLines.map((b) => [b.file, b.line]), [[plain, 17]]);
  assert.equal(second.data.badLines.map((b) => [b.file, b.line]), [[bgzf, 103]]);
  assert.is(second.data.split, 'bytes');
});

test.run();
