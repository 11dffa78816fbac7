// Which lines each of W workers trains in an epoch, and where a run stands in it, as a function of
// the data plan alone (no parsing), so every worker computes the same schedule without talking and
// a checkpoint can record the position exactly. Lines are named by their global non-empty index
// (src/data/data-plan.ts); line i is held out when i % evalEvery === evalEvery - 1, and the rest
// are training lines.
//
// An epoch has a layout: W workers and a pool of index intervals (absent: the whole data set).
// A fresh epoch cuts the data into W contiguous shares of equal line counts; where there are at
// least W files, a share boundary inside a plain gzip file moves to that file's nearer end, so
// such files go to one worker whole (a deflate stream cannot be entered in the middle). A pool
// (what was left of an epoch when a run resumed onto another worker count) is cut into W pieces
// of equal training-line counts. Worker r's k-th batch is the training lines of ranks
// [k*batch, (k+1)*batch) of its share (a bad line leaves its batch one sample short), and every
// worker runs floor(smallest share's training lines / batch) steps in the epoch.
//
// A cursor (epoch, steps into it, its layout) is what a checkpoint records. Resumed onto the same
// worker count, the run continues the same layout at the same step: exactly the samples of an
// uninterrupted run. Onto another count, the untrained rest of every share becomes the pool of a
// new layout for the new count, so the epoch ends with each of its samples trained once (but for
// the last part-batches), and the following epochs are fresh layouts of the new count.
import type { DataPlan } from './data-plan.ts';

/** Global non-empty line indices [lo, hi). */
export type Interval = [number, number];
export interface Layout { workers: number; pool?: Interval[] }
export interface DataCursor {
  epoch: number;
  /** Steps of this epoch already trained, of `batch` samples per worker. */
  epochStep: number;
  batch: number;
  layout: Layout;
  /** The data set's non-empty lines when the cursor was written (a different count: other data). */
  lines: number;
}

/** Training lines among the indices [lo, hi). */
export function trainCount(lo: number, hi: number, every: number): number {
  return every > 0 ? hi - lo - (Math.floor(hi / every) - Math.floor(lo / every)) : hi - lo;
}

/** The index of the j-th (0-based) training line at or after `lo`. */
export function trainIndexAt(lo: number, j: number, every: number): number {
  if (every <= 0) return lo + j;
  let a = lo + j, b = lo + 2 * j + 2; // every >= 2: at most every other line is held out
  while (a < b) {
    const m = Math.floor((a + b) / 2);
    if (trainCount(lo, m + 1, every) > j) b = m; else a = m + 1;
  }
  return a;
}

export function intervalsTrainCount(iv: Interval[], every: number): number {
  return iv.reduce((s, [lo, hi]) => s + trainCount(lo, hi, every), 0);
}

/** The part of `iv` holding its training lines of ranks [from, to) (in order; adjacent intervals merged). */
export function sliceByTrainRank(iv: Interval[], from: number, to: number, every: number): Interval[] {
  const out: Interval[] = [];
  let rank = 0;
  for (const [lo, hi] of iv) {
    const c = trainCount(lo, hi, every);
    const s = Math.max(from, rank), e = Math.min(to, rank + c);
    if (s < e) {
      const a = s === rank ? lo : trainIndexAt(lo, s - rank, every), b = e === rank + c ? hi : trainIndexAt(lo, e - rank, every);
      const last = out[out.length - 1];
      if (last && last[1] === a) last[1] = b; else out.push([a, b]);
    }
    rank += c;
    if (rank >= to) break;
  }
  return out;
}

/** The shares of a fresh epoch: W contiguous index ranges of equal line counts (see the header for gzip files). */
export function freshShares(plan: DataPlan, workers: number): Interval[][] {
  const N = plan.lines;
  const atoms = plan.files.length >= workers ? plan.files.filter((f) => f.kind === 'gzip') : [];
  const cuts = Array.from({ length: workers + 1 }, (_, r) => {
    let t = Math.floor((r * N) / workers);
    for (const f of atoms) {
      const a = f.firstIndex, c = f.firstIndex + f.lines;
      if (a < t && t < c) t = t - a <= c - t ? a : c;
    }
    return t;
  });
  return Array.from({ length: workers }, (_, r) => [[cuts[r]!, cuts[r + 1]!] as Interval]);
}

/** A pool cut into W pieces of equal training-line counts. */
export function poolShares(pool: Interval[], workers: number, every: number): Interval[][] {
  const T = intervalsTrainCount(pool, every);
  return Array.from({ length: workers }, (_, r) => sliceByTrainRank(pool, Math.floor((r * T) / workers), Math.floor(((r + 1) * T) / workers), every));
}

export function sharesOf(plan: DataPlan, layout: Layout, every: number): Interval[][] {
  return layout.pool ? poolShares(layout.pool, layout.workers, every) : freshShares(plan, layout.workers);
}

/** Steps of an epoch of these shares. */
export function stepsPerEpoch(shares: Interval[][], batch: number, every: number): number {
  return Math.floor(Math.min(...shares.map((s) => intervalsTrainCount(s, every))) / batch);
}

/** What the shares have not trained after `steps` steps, in order. */
export function untrained(shares: Interval[][], steps: number, batch: number, every: number): Interval[] {
  return sliceByTrainRank(shares.flatMap((s) => sliceByTrainRank(s, steps * batch, Infinity, every)), 0, Infinity, every);
}

/**
 * The cursor `c` onto `workers` workers at `batch`: the same one for its own count and batch, else
 * its untrained rest as a new layout's pool (a new batch size moves the batch boundaries too).
 */
export function onto(plan: DataPlan, c: DataCursor, workers: number, batch: number, every: number): DataCursor {
  if (c.layout.workers === workers && c.batch === batch) return c;
  const pool = untrained(sharesOf(plan, c.layout, every), c.epochStep, c.batch, every);
  return { epoch: c.epoch, epochStep: 0, batch, layout: { workers, pool }, lines: c.lines };
}

/** Where step `step` stands when a run had W workers and kept no cursor (before cursors existed, or another tool): fresh epochs of W. */
export function cursorFromStep(plan: DataPlan, step: number, workers: number, batch: number, every: number): DataCursor {
  const per = stepsPerEpoch(freshShares(plan, workers), batch, every);
  return { epoch: per > 0 ? Math.floor(step / per) : 0, epochStep: per > 0 ? step % per : 0, batch, layout: { workers }, lines: plan.lines };
}

/** A checkpoint's cursor field checked (a peer's file: every field, or a message naming what is wrong). */
export function checkCursor(x: unknown): DataCursor | string {
  const c = x as DataCursor;
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  if (!c || typeof c !== 'object') return 'not an object';
  if (!count(c.epoch) || !count(c.epochStep) || !count(c.lines)) return 'epoch, epochStep and lines must be counts';
  if (!Number.isSafeInteger(c.batch) || c.batch < 1) return 'batch must be >= 1';
  if (!c.layout || !Number.isSafeInteger(c.layout.workers) || c.layout.workers < 1) return 'layout.workers must be >= 1';
  if (c.layout.pool !== undefined && !(Array.isArray(c.layout.pool) && c.layout.pool.every((iv) => Array.isArray(iv) && iv.length === 2 && count(iv[0]) && count(iv[1]) && iv[0] <= iv[1]))) {
    return 'layout.pool must be a list of [lo, hi] index pairs';
  }
  return c;
}

/** The epochs of a run from its first cursor: the first one's layout, then fresh ones of `workers`. */
export class EpochSequence {
  readonly firstPer: number; readonly freshPer: number; readonly start: number;
  constructor(private readonly plan: DataPlan, readonly first: DataCursor, firstStep: number, readonly workers: number, private readonly batch: number, private readonly every: number) {
    this.firstPer = stepsPerEpoch(sharesOf(plan, first.layout, every), batch, every);
    this.freshPer = stepsPerEpoch(freshShares(plan, workers), batch, every);
    this.start = firstStep - first.epochStep;
  }
  /** The cursor after `step` steps of the run (global step numbers). */
  at(step: number): DataCursor {
    const end = this.start + this.firstPer;
    if (step < end) return { ...this.first, epochStep: step - this.start };
    const k = this.freshPer > 0 ? Math.floor((step - end) / this.freshPer) : 0;
    return { epoch: this.first.epoch + 1 + k, epochStep: step - end - k * this.freshPer, batch: this.batch, layout: { workers: this.workers }, lines: this.plan.lines };
  }
}
