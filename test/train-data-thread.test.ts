// Training's batches read in a thread (src/train/data-thread.ts) against trainBatches run in this
// thread, on real files with bad lines: the same batches bit for bit, the same statistics after
// each batch, the same cursors, for both data splits, several ranks and a resume that skips steps;
// the same error message when the data cannot be trained on; held-out batches (evalBatchesInThread)
// equal evalBatches' with a limit and without; the read-ahead stops at READ_AHEAD
// batches beyond what was taken (counted through the data layer's sample trace); a closed reader
// answers no cursor.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { trainBatches, evalBatches, type Minibatch, type DataStats } from '../src/train/batches.ts';
import { trainBatchesInThread, evalBatchesInThread, READ_AHEAD } from '../src/train/data-thread.ts';
import { tmp, writeRandomCriteo, tinyConfig } from './helpers/train.ts';

const dir = tmp('hps-data-thread-');
const data = writeRandomCriteo(join(dir, 'all.tsv'), 900, 11);
{ // two bad lines, parsed by whichever worker's share holds them
  const lines = readFileSync(data, 'utf8').trimEnd().split('\n');
  lines[40] = 'not\ta\tcriteo\tline';
  lines[700] = '1\t2';
  writeFileSync(data, lines.join('\n') + '\n');
}

interface Seen { batches: { size: number; dense: number[]; labels: number[]; cats: number[] }[]; stats: DataStats[]; cursors: unknown[] }

async function drain(src: { batches: AsyncGenerator<Minibatch>; stats: () => DataStats; cursor: (s: number) => Promise<unknown> }, limit = Infinity): Promise<Seen> {
  const seen: Seen = { batches: [], stats: [], cursors: [] };
  for await (const mb of src.batches) {
    seen.batches.push({ size: mb.size, dense: Array.from(mb.dense), labels: Array.from(mb.labels), cats: Array.from(mb.cats) });
    seen.stats.push(structuredClone(src.stats()));
    if (seen.batches.length >= limit) break;
  }
  for (const s of [0, 1, 3, 7]) seen.cursors.push(await src.cursor(s));
  seen.stats.push(structuredClone(src.stats()));
  return seen;
}

test('the thread gives what trainBatches gives: batches, statistics, cursors', async () => {
  const cases = [
    { split: 'bytes' as const, workers: 1, rank: 0, skip: 0 },
    { split: 'bytes' as const, workers: 3, rank: 2, skip: 0 },
    { split: 'bytes' as const, workers: 2, rank: 0, skip: 4 },
    { split: 'stream' as const, workers: 2, rank: 1, skip: 3 },
  ];
  for (const c of cases) {
    const cfg = tinyConfig(data, { dataSplit: c.split, batch: 16, steps: 0, epochs: 2, workers: c.workers });
    const o = { rank: c.rank, workers: c.workers, skipSteps: c.skip };
    const logsHere: string[] = [], logsThere: string[] = [];
    const want = await drain(trainBatches(cfg, { ...o, log: (l, m) => logsHere.push(`${l} ${m}`) }));
    const threaded = trainBatchesInThread(cfg, { ...o, log: (l, m) => logsThere.push(`${l} ${m}`) });
    const got = await drain(threaded);
    await threaded.close();
    assert.ok(want.batches.length > 10, `${JSON.stringify(c)}: ${want.batches.length} batches`);
    assert.equal(got.batches, want.batches, `batches ${JSON.stringify(c)}`);
    assert.equal(got.stats, want.stats, `statistics ${JSON.stringify(c)}`);
    assert.equal(got.cursors, want.cursors, `cursors ${JSON.stringify(c)}`);
    assert.equal(logsThere, logsHere, `log lines ${JSON.stringify(c)}`);
  }
  // The bad lines were seen, so the statistics compared above are not all zeros.
  const all = await drain(trainBatches(tinyConfig(data, { dataSplit: 'bytes', batch: 16, steps: 0, epochs: 1 }), { rank: 0, workers: 1, skipSteps: 0 }));
  assert.is(all.stats.at(-1)!.bad, 2);
});

test('data that cannot be trained on fails with the same message', async () => {
  const small = writeRandomCriteo(join(dir, 'small.tsv'), 30, 3);
  const cfg = tinyConfig(small, { dataSplit: 'bytes', batch: 16, steps: 0, epochs: 1, workers: 4 });
  const o = { rank: 3, workers: 4, skipSteps: 0 };
  const message = async (it: AsyncGenerator<Minibatch>) => { try { for await (const _ of it); return 'no error'; } catch (e) { return (e as Error).message; } };
  const want = await message(trainBatches(cfg, o).batches);
  assert.match(want, /fewer than one batch/);
  const threaded = trainBatchesInThread(cfg, o);
  assert.is(await message(threaded.batches), want);
  await threaded.close();
  // A missing file: trainBatches throws as it is called; the thread's first batch fails with its message.
  const nope = tinyConfig(join(dir, 'nope.tsv'), { dataSplit: 'bytes' });
  let inline = '';
  try { trainBatches(nope, o); } catch (e) { inline = (e as Error).message; }
  assert.match(inline, /nope\.tsv/);
  const missing = trainBatchesInThread(nope, o);
  assert.is(await message(missing.batches), inline);
  await missing.close();
});

test('held-out batches through a thread equal evalBatches in place, with a limit or without', async () => {
  const cfg = tinyConfig(data, { dataSplit: 'bytes', batch: 16 });
  const arrays = async (it: AsyncIterable<Minibatch>) => { const out: number[][] = []; for await (const mb of it) out.push([mb.size, ...mb.labels.subarray(0, mb.size), ...mb.cats.subarray(0, mb.size * 26)]); return out; };
  for (const [B, limit] of [[32, 50], [16, Number.MAX_SAFE_INTEGER]] as const) {
    const want = await arrays(evalBatches(cfg, B, limit));
    assert.ok(want.length >= 2, `${want.length} held-out batches`);
    assert.equal(await arrays(evalBatchesInThread(cfg, B, limit)), want, `batch ${B}, limit ${limit}`);
  }
  // A caller that stops early ends the thread's generator too (its finally closes the thread).
  for await (const mb of evalBatchesInThread(cfg, 8, 1000)) { assert.is(mb.size, 8); break; }
});

test(`the thread reads at most ${READ_AHEAD} batches ahead of what was taken`, async () => {
  const trace = join(dir, 'trace');
  mkdirSync(trace);
  process.env.HYBRIDPS_TRACE_SAMPLES = trace; // the thread inherits it: one line per batch it produced
  const produced = () => readdirSync(trace).reduce((a, f) => a + readFileSync(join(trace, f), 'utf8').trim().split('\n').filter(Boolean).length, 0);
  const threaded = trainBatchesInThread(tinyConfig(data, { dataSplit: 'bytes', batch: 8, steps: 0, epochs: 1 }), { rank: 0, workers: 1, skipSteps: 0 });
  try {
    const it = threaded.batches;
    for (let taken = 1; taken <= 3; taken++) {
      await it.next();
      // Give the thread time to run ahead as far as it may.
      for (let i = 0; i < 100 && produced() < taken + READ_AHEAD; i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 100));
      assert.is(produced(), taken + READ_AHEAD, `after taking ${taken}`);
    }
  } finally {
    delete process.env.HYBRIDPS_TRACE_SAMPLES;
    await threaded.close();
  }
  await threaded.cursor(1).then(() => assert.unreachable('a closed reader answered'), (e: Error) => assert.match(e.message, /closed/));
});

test.run();
