// Which samples each worker trains on, step by step, in one of two ways (`dataSplit`). The data is
// one or more files (`--data`: src/data/data-files.ts) whose non-empty lines, one file after the
// other, carry one global index: line i is held out for evaluation when i % evalEvery is
// evalEvery - 1, whatever the split and the worker count.
//
// 'bytes' (the default): each worker reads and parses only its share. Every worker plans the data
// (src/data/data-plan.ts: a newline scan, no parsing) and computes the same schedule from the plan
// (src/data/schedule.ts: shares of equal line counts, whole plain gzip files where there are at
// least as many files as workers; batch k of a share is its training lines k*batch.. (k+1)*batch,
// a bad line leaves its batch a sample short). So the position after any step is known to every
// worker, a checkpoint records it (a cursor), and a resume continues at exactly the next sample:
// onto the same worker count the same shares, onto another one the epoch's untrained rest cut
// among the new workers (each sample once an epoch).
//
// 'stream': the training lines of all files form one stream, repeated for each epoch; global batch
// k is stream samples [kG, (k+1)G) with G = batch x workers, and worker r takes the contiguous
// slice [kG + r*batch, kG + (r+1)*batch). So W workers at batch b see exactly the samples one
// worker at batch W*b sees, and a run resumed at step s skips s*G samples whatever the worker
// count. Every worker parses every line (to classify bad lines identically everywhere).
//
// HYBRIDPS_TRACE_SAMPLES=<dir> (a debugging aid, 'bytes' only) makes each worker append one line
// per batch it hands out, `<step> <index> <index> ...`, to <dir>/samples-<rank>-<pid>.txt; a batch
// read ahead of the last step is listed too, with its step number past the run's end.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { CRITEO_CATS, CRITEO_DENSE, parseCriteoLine, isEvalIndex, type Minibatch as CriteoMinibatch, type CriteoStats } from '../data/criteo.ts';
import { dataLines, type FileLine } from '../data/lines.ts';
import { resolveDataFiles } from '../data/data-files.ts';
import { planData, planLines as planLinesOf, type DataPlan } from '../data/data-plan.ts';
import { EpochSequence, freshShares, intervalsTrainCount, sharesOf, sliceByTrainRank, onto, cursorFromStep, type DataCursor } from '../data/schedule.ts';
import type { ModelBatch, ModelConfig, ModelModule } from '../model/model-module.ts';
import type { TrainConfig } from './config.ts';

/** A worker's slice of one global batch: the reader's minibatch without a first line number. */
export type Minibatch = Omit<CriteoMinibatch, 'firstLine'>;

export interface BadLine { file: string; line: number; why: string }

export type DataStats = Omit<CriteoStats, 'samples' | 'badLines'> & {
  badLines: BadLine[];
  /** Lines this worker parsed in its first pass ('bytes': its share; 'stream': every line). */
  parsed: number;
  split: 'bytes' | 'stream';
};

/** What a resumed run knows of where the checkpoint's data stood. */
export interface DataResume { cursor?: DataCursor; workers?: number; batch?: number }

export type DataLog = (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;

const MAX_BAD_REPORTED = 20;

function allocate(n: number): Minibatch {
  return { size: n, dense: new Float32Array(n * CRITEO_DENSE), labels: new Float32Array(n), cats: new Uint32Array(n * CRITEO_CATS) };
}

/** The model's inputs for a reader's minibatch, as its module maps the records. */
export function modelBatch(mod: ModelModule, config: ModelConfig, mb: Minibatch): ModelBatch {
  return mod.toBatch({ ...mb, denseWidth: CRITEO_DENSE, catWidth: CRITEO_CATS }, config);
}

/** The resume's cursor onto this run's workers (a cursor for other data, or none, derived from the step). */
function firstCursor(plan: DataPlan, step: number, workers: number, b: number, every: number, resume: DataResume | undefined, log: DataLog): DataCursor {
  const saved = resume?.cursor;
  if (saved && (saved.lines !== plan.lines || (saved.layout.pool ?? []).some(([, hi]) => hi > plan.lines))) {
    log('warn', `the checkpoint's data position is for ${saved.lines} lines, this data has ${plan.lines}: other data, so step ${step} starts a fresh epoch`);
    return { epoch: 0, epochStep: 0, batch: b, layout: { workers }, lines: plan.lines };
  }
  const c = saved ?? cursorFromStep(plan, step, resume?.workers ?? workers, resume?.batch ?? b, every);
  if (c.layout.workers !== workers || c.batch !== b) {
    log('info', `resuming onto ${workers} worker(s) at batch ${b} from ${c.layout.workers} at ${c.batch}: the rest of epoch ${c.epoch} is cut among them`, { epoch: c.epoch, epochStep: c.epochStep });
  }
  return onto(plan, c, workers, b, every);
}

export function trainBatches(cfg: TrainConfig, o: { rank: number; workers: number; skipSteps: number; resume?: DataResume; log?: DataLog }) {
  const files = resolveDataFiles(cfg.data);
  const stats: DataStats = { lines: 0, bad: 0, badLines: [], parsed: 0, split: cfg.dataSplit };
  const b = cfg.batch, every = cfg.evalEvery, log: DataLog = o.log ?? (() => {});
  const trace = process.env.HYBRIDPS_TRACE_SAMPLES;
  /** Parses `line` into slot `at` of `into`; false (counted once, in the first pass) for a bad line. */
  const parse = (l: FileLine, into: Minibatch, at: number, firstPass: boolean): boolean => {
    if (firstPass) stats.parsed++;
    const label = parseCriteoLine(l.line, cfg.model.rowsPerTable, into.dense, into.cats, at * CRITEO_DENSE, at * CRITEO_CATS);
    if (typeof label === 'string') {
      if (firstPass) {
        stats.bad++;
        if (stats.badLines.length < MAX_BAD_REPORTED) stats.badLines.push({ file: l.file, line: l.lineNo, why: label });
      }
      if (cfg.onBadLine === 'fatal') throw new Error(`${l.file}:${l.lineNo}: ${label}`);
      return false;
    }
    into.labels[at] = label;
    return true;
  };

  let seqReady!: (s: EpochSequence) => void, seqFailed!: (e: unknown) => void;
  const sequence = new Promise<EpochSequence>((res, rej) => { seqReady = res; seqFailed = rej; });
  sequence.catch(() => {});

  async function plan(): Promise<{ plan: DataPlan; seq: EpochSequence }> {
    const plan = await planData(files, { onFile: (f, ms) => { if (files.length > 1 || ms > 1000) log('info', 'planned data file', { file: f.path, kind: f.kind, lines: f.lines, ms: Math.round(ms) }); } });
    if (o.rank === 0 && o.workers > 1 && files.length < o.workers) {
      for (const f of plan.files.filter((x) => x.kind === 'gzip')) {
        log('warn', `${f.path} is plain gzip, which cannot be entered in the middle: each worker inflates it from its start up to its own share (up to ${o.workers}x the decompression, the last worker about 0.8 of a whole parse's cost; only the parsing is split). Recompress it with bgzip (htslib; blocked gzip, read from any block) or split it into at least ${o.workers} files`);
      }
    }
    const first = o.skipSteps > 0 || o.resume ? firstCursor(plan, o.skipSteps, o.workers, b, every, o.resume, log) : { epoch: 0, epochStep: 0, batch: b, layout: { workers: o.workers }, lines: plan.lines };
    const seq = new EpochSequence(plan, first, o.skipSteps, o.workers, b, every);
    if (seq.freshPer === 0) {
      const fewest = Math.min(...freshShares(plan, o.workers).map((s) => intervalsTrainCount(s, every)));
      throw new Error(`${cfg.data}: split among ${o.workers} workers, the smallest share has ${fewest} training lines, fewer than one batch of ${b} (use fewer workers, a smaller --batch, more files than workers for gzip data, or --data-split stream)`);
    }
    return { plan, seq };
  }

  async function* byBytes(): AsyncGenerator<Minibatch> {
    let p: Awaited<ReturnType<typeof plan>>;
    try { p = await plan(); } catch (e) { seqFailed(e); throw e; }
    const { plan: dp, seq } = p;
    seqReady(seq);
    stats.lines = freshShares(dp, o.workers)[o.rank]!.reduce((a, [lo, hi]) => a + hi - lo, 0); // the shares partition the data: the summary sums them
    let step = o.skipSteps, firstPass = true;
    for (let epoch = seq.first.epoch; cfg.steps > 0 || epoch < cfg.epochs; epoch++) {
      const isFirst = epoch === seq.first.epoch;
      const layout = isFirst ? seq.first.layout : { workers: o.workers };
      const from = isFirst ? seq.first.epochStep : 0, per = isFirst ? seq.firstPer : seq.freshPer;
      const mine = sliceByTrainRank(sharesOf(dp, layout, every)[o.rank]!, from * b, per * b, every);
      let mb = allocate(b), n = 0, t = 0;
      const idx: number[] = [];
      for (const [lo, hi] of mine) {
        for await (const block of planLinesOf(dp, lo, hi)) {
          for (const l of block) {
            if (isEvalIndex(l.index, every)) continue;
            if (parse(l, mb, n, firstPass)) { n++; if (trace) idx.push(l.index); }
            if (++t < b) continue;
            if (n === 0) throw new Error(`${l.file}: worker ${o.rank}'s batch for step ${step + 1} has no good line (all ${b} up to line ${l.lineNo} are bad)`);
            mb.size = n;
            step++;
            if (trace) { appendFileSync(join(trace, `samples-${o.rank}-${process.pid}.txt`), `${step} ${idx.join(' ')}\n`); idx.length = 0; }
            yield mb;
            mb = allocate(b); n = 0; t = 0;
          }
        }
      }
      firstPass = false;
    }
  }

  async function* byStream(): AsyncGenerator<Minibatch> {
    seqReady(undefined as unknown as EpochSequence); // no cursor: the step alone says where a stream run is
    const G = b * o.workers, lo = o.rank * b, skipSamples = o.skipSteps * G;
    let j = 0; // train samples seen, over all epochs
    const scratch = allocate(1);
    // With a step budget the data repeats as often as needed; otherwise `epochs` passes.
    for (let epoch = 0; cfg.steps > 0 || epoch < cfg.epochs; epoch++) {
      let mine = allocate(b), trainInEpoch = 0;
      for await (const block of dataLines(files)) {
        for (const l of block) {
          if (epoch === 0) stats.lines++;
          if (isEvalIndex(l.index, every)) continue;
          const p = j % G;
          const keep = j >= skipSamples && p >= lo && p < lo + b;
          if (!parse(l, keep ? mine : scratch, keep ? p - lo : 0, epoch === 0)) continue;
          trainInEpoch++;
          if (j >= skipSamples && p === G - 1) { yield mine; mine = allocate(b); }
          j++;
        }
      }
      if (trainInEpoch === 0) throw new Error(`${cfg.data}: no training samples (${stats.lines} lines, ${stats.bad} bad)`);
    }
  }

  return {
    batches: cfg.dataSplit === 'bytes' ? byBytes() : byStream(),
    stats: () => stats,
    /** Where the data stands after `step` steps ('bytes'; undefined for 'stream', where the step says it all). */
    cursor: async (step: number): Promise<DataCursor | undefined> => (await sequence)?.at(step),
  };
}

/** Held-out samples (every `evalEvery`-th line), the first `limit` of them, in batches of `B`. */
export async function* evalBatches(cfg: TrainConfig, B: number, limit: number): AsyncGenerator<Minibatch> {
  let mb = allocate(B), n = 0, total = 0;
  read: for await (const block of dataLines(resolveDataFiles(cfg.data))) {
    for (const { line, index } of block) {
      if (!isEvalIndex(index, cfg.evalEvery)) continue;
      const label = parseCriteoLine(line, cfg.model.rowsPerTable, mb.dense, mb.cats, n * CRITEO_DENSE, n * CRITEO_CATS);
      if (typeof label === 'string') continue; // counted by the training pass
      mb.labels[n++] = label;
      total++;
      if (n === B) { yield mb; mb = allocate(B); n = 0; }
      if (total >= limit) break read;
    }
  }
  if (n > 0) { mb.size = n; yield mb; }
}
