// Criteo click logs (the Kaggle Display Advertising Challenge train.txt and the Terabyte day_N
// files share one layout): per line, tab-separated, a 0/1 label, 13 integer "dense" counts and 26
// categorical values hashed to hex strings. We read them the way facebookresearch/dlrm does
// (data_utils.py, dlrm_data_pytorch.py): an empty field is 0, dense x becomes log(1 + max(x, 0)),
// a categorical id is int(hex, 16) mod rowsPerTable (dlrm's --max-ind-range). A malformed line is
// reported with its line number and skipped (or fatal); it is never read as something else.
import { numberedLines, type LineBlock } from './lines.ts';

export const CRITEO_DENSE = 13;
export const CRITEO_CATS = 26;
const FIELDS = 1 + CRITEO_DENSE + CRITEO_CATS;
/** Criteo's ids are 32-bit hashes (8 hex digits); we take up to 64 bits and call longer a bad field. */
const MAX_HEX_DIGITS = 16;

/** The lines of a Criteo file (plain or gzip), numbered, in blocks; `index` counts non-empty lines only. */
export function criteoLines(path: string): AsyncGenerator<LineBlock> {
  return numberedLines(path);
}

/** Whether the line with 0-based index `index` (among non-empty lines) is held out for evaluation. */
export function isEvalIndex(index: number, every: number): boolean {
  return index % every === every - 1;
}

function checkRows(rowsPerTable: number): void {
  if (!Number.isInteger(rowsPerTable) || rowsPerTable < 1 || rowsPerTable > 2 ** 32) {
    throw new RangeError(`rowsPerTable ${rowsPerTable}: must be an integer in [1, 2^32]`);
  }
}

/** A decimal integer with optional '-', or NaN. Hand-rolled: Number() would accept ' 1', '1e3', '0x1f'. */
function parseDecimal(s: string, from: number, to: number): number {
  let i = from, neg = false;
  if (i < to && s.charCodeAt(i) === 45 /* - */) { neg = true; i++; }
  if (i === to) return NaN;
  let v = 0;
  for (; i < to; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return NaN;
    v = v * 10 + d; // past 2^53 this rounds, which the log transform cannot tell apart anyway
  }
  return neg ? -v : v;
}

/** Digit values of '0'-'9', 'a'-'f', 'A'-'F'; -1 for other ASCII (a table beats the branches). */
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let d = 0; d < 16; d++) {
  HEX_VALUE['0123456789abcdef'.charCodeAt(d)] = d;
  HEX_VALUE['0123456789ABCDEF'.charCodeAt(d)] = d;
}

/**
 * hex mod m, exactly for up to 16 hex digits (64 bits), with no BigInt: up to 13 digits (52 bits)
 * the value itself is exact in a double; past that we reduce after each digit, which keeps the
 * running value below 16 m <= 2^36. Returns -1 for a non-hex character or too many digits.
 */
function hexMod(s: string, from: number, to: number, m: number): number {
  if (to - from > MAX_HEX_DIGITS) return -1;
  const exactUpTo = Math.min(to, from + 13);
  let r = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    const d = c < 128 ? HEX_VALUE[c]! : -1;
    if (d < 0) return -1;
    r = r * 16 + d;
    if (i >= exactUpTo - 1) r %= m; // at the last digit, or at every one from the 13th on
  }
  return r;
}

function show(s: string): string {
  return JSON.stringify(s.length > 24 ? `${s.slice(0, 24)}…` : s);
}

/**
 * Parses one line (without its line terminator; a trailing '\r' is tolerated) into
 * outDense[denseAt .. denseAt+13) (transformed) and outCats[catAt .. catAt+26) (ids mod
 * rowsPerTable). Returns the label (0 or 1), or a string saying what is wrong with the line; on
 * error the output slots may be partly written.
 */
export function parseCriteoLine(line: string, rowsPerTable: number, outDense: Float32Array, outCats: Uint32Array, denseAt: number, catAt: number): number | string {
  checkRows(rowsPerTable);
  let end = line.length;
  if (end > 0 && line.charCodeAt(end - 1) === 13) end--;
  // Fields are counted only when something is wrong (a prepass costs ~15% of the parse), and a
  // wrong count takes precedence: a short line is reported as such, not as a bad value somewhere.
  let start = 0, stop = line.indexOf('\t');
  if (stop === -1 || stop > end) return badLine(line, end, '');
  const labelText = line.slice(0, stop);
  if (labelText !== '0' && labelText !== '1') return badLine(line, end, `label ${show(labelText)} is not 0 or 1`);
  const label = labelText === '1' ? 1 : 0;
  for (let f = 1; f < FIELDS; f++) {
    start = stop + 1;
    if (f === FIELDS - 1) stop = end; // a tab inside it fails the hex check, then the count
    else if ((stop = line.indexOf('\t', start)) === -1 || stop > end) return badLine(line, end, '');
    if (f <= CRITEO_DENSE) {
      let x = 0;
      if (stop > start) {
        x = parseDecimal(line, start, stop);
        if (Number.isNaN(x)) return badLine(line, end, `dense feature I${f} ${show(line.slice(start, stop))} is not an integer`);
      }
      outDense[denseAt + f - 1] = Math.log1p(Math.max(x, 0));
    } else {
      const c = f - CRITEO_DENSE;
      let id = 0;
      if (stop > start) {
        id = hexMod(line, start, stop, rowsPerTable);
        if (id < 0) return badLine(line, end, `categorical feature C${c} ${show(line.slice(start, stop))} is not a hex id of at most ${MAX_HEX_DIGITS} digits`);
      }
      outCats[catAt + c - 1] = id;
    }
  }
  return label;
}

/** What is wrong with a line (up to `end`): its field count if not 40, else `why`. */
function badLine(line: string, end: number, why: string): string {
  let fields = 1;
  for (let i = line.indexOf('\t'); i !== -1 && i < end; i = line.indexOf('\t', i + 1)) fields++;
  if (fields === FIELDS) return why;
  const hint = fields === FIELDS - 1 ? ' (no label column? Kaggle test.txt has none)' : '';
  return `expected ${FIELDS} tab-separated fields (label, ${CRITEO_DENSE} dense, ${CRITEO_CATS} categorical), got ${fields}${hint}`;
}

export interface Minibatch {
  size: number;
  /** size x 13, row-major, transformed. */
  dense: Float32Array;
  /** size, 0 or 1. */
  labels: Float32Array;
  /** size x 26, row-major (sample-major): ids already mod rowsPerTable. */
  cats: Uint32Array;
  /** 1-based line number in the file of the batch's first sample. */
  firstLine: number;
}

export interface CriteoStats {
  /** Non-empty lines read from the file (all of them, whatever the shard and split). */
  lines: number;
  /** Good samples this reader yielded. */
  samples: number;
  /** Malformed lines among this reader's own (shard and split) lines. */
  bad: number;
  /** The first `maxBadReported` of them. */
  badLines: { line: number; why: string }[];
}

export interface CriteoReaderOptions {
  rowsPerTable: number;
  /** Line i (0-based among non-empty lines) belongs to worker i % count. */
  shard?: { index: number; count: number };
  /** Line i is held out for evaluation when i % every === every - 1; `take` says which side to read. */
  split?: { every: number; take: 'train' | 'eval' };
  onBad?: 'skip' | 'fatal';
  maxBadReported?: number;
}

function checkInt(what: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`${what} ${v}: must be an integer >= ${min}`);
}

/**
 * Streams one worker's share of a Criteo file as minibatches, in constant memory (the file may be
 * tens of GB, plain or gzip). The shard and the split are decided by the line's index in the whole
 * file, so the train/eval sets are the same for any worker count, and a bad line shifts nothing.
 * Only this reader's own lines are parsed; a bad one is counted here.
 */
export class CriteoReader {
  readonly stats: CriteoStats = { lines: 0, samples: 0, bad: 0, badLines: [] };
  private readonly rows: number;
  private readonly shardIndex: number;
  private readonly shardCount: number;
  private readonly every: number;
  private readonly takeEval: boolean;
  private readonly fatal: boolean;
  private readonly maxBad: number;

  constructor(readonly path: string, opts: CriteoReaderOptions) {
    checkRows(opts.rowsPerTable);
    this.rows = opts.rowsPerTable;
    this.shardCount = opts.shard?.count ?? 1;
    this.shardIndex = opts.shard?.index ?? 0;
    checkInt('shard count', this.shardCount, 1);
    checkInt('shard index', this.shardIndex, 0);
    if (this.shardIndex >= this.shardCount) throw new RangeError(`shard index ${this.shardIndex} is not below the shard count ${this.shardCount}`);
    this.every = opts.split?.every ?? 0; // 0: no split, every line is read
    if (opts.split) {
      checkInt('split every', opts.split.every, 2);
      if (opts.split.take !== 'train' && opts.split.take !== 'eval') throw new RangeError(`split take ${String(opts.split.take)}: 'train' or 'eval'`);
    }
    this.takeEval = opts.split?.take === 'eval';
    const onBad = opts.onBad ?? 'skip';
    if (onBad !== 'skip' && onBad !== 'fatal') throw new RangeError(`onBad ${String(onBad)}: 'skip' or 'fatal'`);
    this.fatal = onBad === 'fatal';
    this.maxBad = opts.maxBadReported ?? 20;
    checkInt('maxBadReported', this.maxBad, 0);
  }

  /** Whether the line with this global index is this reader's. */
  owns(index: number): boolean {
    if (this.every > 0 && isEvalIndex(index, this.every) !== this.takeEval) return false;
    return index % this.shardCount === this.shardIndex;
  }

  /** Minibatches of `batchSize` samples (the last may be smaller; none is empty). Each is freshly allocated. */
  async *batches(batchSize: number): AsyncGenerator<Minibatch> {
    checkInt('batch size', batchSize, 1);
    const alloc = (): Minibatch => ({
      size: 0, dense: new Float32Array(batchSize * CRITEO_DENSE), labels: new Float32Array(batchSize),
      cats: new Uint32Array(batchSize * CRITEO_CATS), firstLine: 0,
    });
    let mb = alloc(), n = 0;
    for await (const block of numberedLines(this.path)) {
      for (const { line, lineNo, index } of block) {
        this.stats.lines++;
        if (!this.owns(index)) continue;
        const label = parseCriteoLine(line, this.rows, mb.dense, mb.cats, n * CRITEO_DENSE, n * CRITEO_CATS);
        if (typeof label === 'string') {
          if (this.fatal) throw new Error(`${this.path}:${lineNo}: ${label}`);
          this.stats.bad++;
          if (this.stats.badLines.length < this.maxBad) this.stats.badLines.push({ line: lineNo, why: label });
          continue;
        }
        if (n === 0) mb.firstLine = lineNo;
        mb.labels[n++] = label;
        this.stats.samples++;
        if (n === batchSize) {
          mb.size = n;
          yield mb;
          mb = alloc();
          n = 0;
        }
      }
    }
    if (n > 0) {
      yield { size: n, dense: mb.dense.subarray(0, n * CRITEO_DENSE), labels: mb.labels.subarray(0, n), cats: mb.cats.subarray(0, n * CRITEO_CATS), firstLine: mb.firstLine };
    }
  }
}

/** Shorthand for `new CriteoReader(path, opts)`. */
export function readCriteo(path: string, opts: CriteoReaderOptions): CriteoReader {
  return new CriteoReader(path, opts);
}
