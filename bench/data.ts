// What a worker's share of the data costs against parsing all of it (docs/data.md, "bytes"): on a
// gen-data file written as plain text, plain gzip and BGZF, the CPU time of this process (user +
// system, steadier than wall time on a shared machine) for the plan alone, for the last of W workers
// reading its share (`--data-split bytes`, the plan included; the last rank is the worst case of a
// plain gzip file, which it inflates from the start), and for one worker parsing every
// line (`--data-split stream`), alternated `repeats` times; medians and the share/whole ratio
// (ideal 1/W plus the plan). Then what training's main thread still spends on a batch of 2048 when
// its data thread (src/train/data-thread.ts) reads it, against reading it in that thread.
// `npm run bench -- data [--json] [--quick]`, `--workers W` (default 4).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { generateSynthetic } from '../src/data/synthetic.ts';
import { bgzfCompress } from '../src/data/bgzf.ts';
import { planData } from '../src/data/data-plan.ts';
import { trainBatches } from '../src/train/batches.ts';
import { trainBatchesInThread } from '../src/train/data-thread.ts';
import { DEFAULTS, type TrainConfig } from '../src/train/config.ts';

const cpuMs = async (f: () => Promise<unknown>): Promise<number> => {
  const t = process.cpuUsage();
  await f();
  const d = process.cpuUsage(t);
  return (d.user + d.system) / 1000;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function drain(data: string, split: 'bytes' | 'stream', workers: number): Promise<number> {
  const rank = workers - 1;
  const cfg: TrainConfig = { ...DEFAULTS, model: { rowsPerTable: 1000 }, data, dataSplit: split, workers, batch: 256, steps: 0, epochs: 1 };
  const s = trainBatches(cfg, { rank, workers, skipSteps: 0 });
  for await (const _ of s.batches); // eslint-disable-line @typescript-eslint/no-unused-vars
  return s.stats().parsed;
}

export async function runDataBench(o: { json: boolean; quick: boolean; workers?: number }): Promise<object> {
  const W = o.workers ?? 4, samples = o.quick ? 40_000 : 200_000, repeats = o.quick ? 1 : 3;
  const log = (s: string) => (o.json ? process.stderr : process.stdout).write(s + '\n');
  const dir = mkdtempSync(join(tmpdir(), 'hps-bench-data-'));
  try {
    const plain = join(dir, 'data.tsv');
    await generateSynthetic({ out: plain, samples, seed: 7, rowsPerTable: 1000 });
    const text = readFileSync(plain);
    const files = { plain, gzip: join(dir, 'data.tsv.gz'), bgzf: join(dir, 'data.tsv.bgz') };
    writeFileSync(files.gzip, gzipSync(text));
    writeFileSync(files.bgzf, bgzfCompress(text));
    const rows: Record<string, { planMs: number; shareMs: number; wholeMs: number; parsedShare: number; parsedWhole: number; shareOverWhole: number }> = {};
    log(`${samples} gen-data lines, rank ${W - 1} of ${W} workers against one worker parsing all, CPU ms (median of ${repeats})`);
    log(`${'kind'.padEnd(6)} ${'plan'.padStart(8)} ${'share'.padStart(8)} ${'whole'.padStart(8)} ${'share/whole'.padStart(12)}  parsed share/whole`);
    for (const [kind, path] of Object.entries(files)) {
      const plan: number[] = [], share: number[] = [], whole: number[] = [];
      let parsedShare = 0, parsedWhole = 0;
      await drain(path, 'bytes', W); // warm-up: the first pass also compiles the code
      for (let i = 0; i < repeats; i++) {
        whole.push(await cpuMs(async () => { parsedWhole = await drain(path, 'stream', 1); }));
        share.push(await cpuMs(async () => { parsedShare = await drain(path, 'bytes', W); }));
        plan.push(await cpuMs(() => planData([path])));
      }
      const r = { planMs: Math.round(median(plan)), shareMs: Math.round(median(share)), wholeMs: Math.round(median(whole)), parsedShare, parsedWhole, shareOverWhole: +(median(share) / median(whole)).toFixed(3) };
      rows[kind] = r;
      log(`${kind.padEnd(6)} ${String(r.planMs).padStart(8)} ${String(r.shareMs).padStart(8)} ${String(r.wholeMs).padStart(8)} ${r.shareOverWhole.toFixed(3).padStart(12)}  ${parsedShare}/${parsedWhole}`);
    }
    // The main thread's share when training reads through its data thread (src/train/data-thread.ts):
    // the event loop's busy time per batch of 2048, the thread against reading in this thread
    // (the plain file, one worker, alternated, medians).
    const B = 2048, inline: number[] = [], threaded: number[] = [];
    const busyPerBatch = async (make: typeof trainBatches | typeof trainBatchesInThread): Promise<number> => {
      const cfg: TrainConfig = { ...DEFAULTS, model: { rowsPerTable: 1000 }, data: files.plain, dataSplit: 'bytes', workers: 1, batch: B, steps: 0, epochs: 1 };
      const src = make(cfg, { rank: 0, workers: 1, skipSteps: 0 });
      const e0 = performance.eventLoopUtilization();
      let n = 0;
      for await (const _ of src.batches) n++; // eslint-disable-line @typescript-eslint/no-unused-vars
      const busy = performance.eventLoopUtilization(e0).active / n;
      await (src as { close?: () => Promise<void> }).close?.(); // the thread's reader, not the in-place one
      return busy;
    };
    await busyPerBatch(trainBatchesInThread); // warm-up
    for (let i = 0; i < repeats; i++) { inline.push(await busyPerBatch(trainBatches)); threaded.push(await busyPerBatch(trainBatchesInThread)); }
    const mainThread = { batch: B, inlineMs: +median(inline).toFixed(2), threadMs: +median(threaded).toFixed(2) };
    log(`main thread busy per batch of ${B} (plain file): read here ${mainThread.inlineMs} ms, through the data thread ${mainThread.threadMs} ms`);
    return { samples, workers: W, repeats, rows, mainThread };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
