// What each worker reads, through the training data layer itself (src/train/batches.ts, no
// cluster: every worker's batches are a function of the configuration and its rank): over many
// plain gzip files each worker reads whole files; one plain gzip file is split by lines with a
// warning naming the cost and the fix (bgzip); one BGZF file is split inside. In each case the
// workers' batches partition one epoch's training lines (bar the last part-batches), each worker
// parses about 1/W of them, and a worker's samples are the lines the schedule gave it. Resumes:
// a cursor for other data starts over (warned); a checkpoint with no cursor resumes from its step.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { trainBatches, type DataResume } from '../src/train/batches.ts';
import { bgzfCompress } from '../src/data/bgzf.ts';
import { tmp, writeRandomCriteo, tinyConfig } from './helpers/train.ts';

const dir = tmp('hps-split-');
const text = readFileSync(writeRandomCriteo(join(dir, 'all.tsv'), 600, 5), 'utf8');
const lines = text.trimEnd().split('\n');
const B = 8;

/** Every rank's batches of one epoch, as the labels and first dense value of each sample (to find the line). */
async function epoch(data: string, W: number, b = B, resume?: { skipSteps: number; resume: DataResume }) {
  const perRank: { samples: string[]; parsed: number; warnings: string[] }[] = [];
  for (let rank = 0; rank < W; rank++) {
    const warnings: string[] = [];
    const src = trainBatches(tinyConfig(data, { dataSplit: 'bytes', batch: b, steps: 0, epochs: 1, workers: W }), {
      rank, workers: W, skipSteps: resume?.skipSteps ?? 0, resume: resume?.resume, log: (level, msg) => { if (level === 'warn') warnings.push(msg); },
    });
    const samples: string[] = [];
    for await (const mb of src.batches) {
      for (let i = 0; i < mb.size; i++) samples.push(`${mb.labels[i]}:${Array.from(mb.dense.subarray(i * 13, i * 13 + 13)).join(',')}:${mb.cats[i * 26]}`);
    }
    perRank.push({ samples, parsed: src.stats().parsed, warnings });
  }
  return perRank;
}

function checkPartition(perRank: Awaited<ReturnType<typeof epoch>>, W: number) {
  const train = lines.length - Math.floor(lines.length / 10);
  const all = perRank.flatMap((r) => r.samples);
  assert.ok(all.length <= train && all.length > train - W * (B + 60), `trained ${all.length} of ${train}`);
  for (const r of perRank) assert.ok(r.parsed < (1.5 * train) / W, `a worker parsed ${r.parsed} of ${train} lines (${W} workers)`);
  assert.is(perRank.reduce((a, r) => a + r.parsed, 0) <= train, true, 'no line parsed twice');
}

test('many plain gzip files: whole files per worker', async () => {
  const d = join(dir, 'days');
  mkdirSync(d);
  const sizes = [100, 90, 110, 120, 80, 100];
  for (let f = 0, at = 0; f < 6; at += sizes[f++]!) writeFileSync(join(d, `day_${f}.gz`), gzipSync(lines.slice(at, at + sizes[f]!).join('\n') + '\n'));
  const perRank = await epoch(d, 3);
  checkPartition(perRank, 3);
  for (const r of perRank) assert.equal(r.warnings, []);
  // The cuts at 200 and 400 lines fall inside days 2 and 3 and move to their nearer ends (190 and
  // 420): each worker gets two whole files, and trains their first 20 batches (the smallest share
  // has 162 training lines). The samples by global index come from one worker at batch 1.
  const one = (await epoch(d, 1, 1))[0]!.samples;
  const indexOf = (t: number) => t + Math.floor(t / 9); // the t-th training line (every 10th held out)
  const ranges = [[0, 190], [190, 420], [420, 600]];
  assert.equal(perRank.map((r) => r.samples), ranges.map(([lo, hi]) => one.filter((_, t) => indexOf(t) >= lo! && indexOf(t) < hi!).slice(0, 20 * B)));
});

test('one plain gzip file: split by lines, with a warning that names the cost and the fix', async () => {
  const path = join(dir, 'one.tsv.gz');
  writeFileSync(path, gzipSync(text));
  const perRank = await epoch(path, 2);
  checkPartition(perRank, 2);
  assert.is(perRank[0]!.warnings.length, 1);
  assert.match(perRank[0]!.warnings[0]!, /plain gzip.*inflates it from its start.*bgzip/);
});

test('one BGZF file: split inside the file, same samples as the plain file', async () => {
  const path = join(dir, 'one.tsv.bgz');
  writeFileSync(path, bgzfCompress(Buffer.from(text), 5000));
  const gz = await epoch(path, 3), pl = await epoch(join(dir, 'all.tsv'), 3);
  checkPartition(gz, 3);
  assert.equal(gz.map((r) => r.samples), pl.map((r) => r.samples));
  for (const r of gz) assert.equal(r.warnings, []);
});

test('resume: a cursor for other data starts a fresh epoch (warned); no cursor resumes from the step and the worker count', async () => {
  const path = join(dir, 'all.tsv');
  const fresh = await epoch(path, 2);
  const other = await epoch(path, 2, B, { skipSteps: 5, resume: { cursor: { epoch: 0, epochStep: 5, batch: B, layout: { workers: 2 }, lines: 999 }, workers: 2 } });
  assert.equal(other.map((r) => r.samples), fresh.map((r) => r.samples));
  assert.match(other[0]!.warnings[0]!, /data position is for 999 lines, this data has 600/);
  // An older checkpoint (no cursor) of 2 workers at step 5, onto 3: as its derived cursor says.
  const derived = await epoch(path, 3, B, { skipSteps: 5, resume: { workers: 2, batch: B } });
  const viaCursor = await epoch(path, 3, B, { skipSteps: 5, resume: { cursor: { epoch: 0, epochStep: 5, batch: B, layout: { workers: 2 }, lines: 600 } } });
  assert.equal(derived.map((r) => r.samples), viaCursor.map((r) => r.samples));
  // Over the two runs, each sample of the epoch once: the 2-worker run's first 5 batches and the rest.
  const before = fresh.flatMap((r) => r.samples.slice(0, 5 * B)), after = viaCursor.flatMap((r) => r.samples);
  const all = [...before, ...after];
  assert.is(new Set(all).size, all.length, 'no sample twice');
  assert.ok(all.length > 540 - 3 * (B + 1), `${all.length} of 540 trained`);
});

test.run();
