// Which samples each worker trains on, step by step, in one of two ways (`dataSplit`):
//
// 'bytes' (the default): each worker reads and parses only its share of the file, a byte range
// aligned to line starts (src/data/byte-shards.ts), so W workers parse the file once between them
// instead of W times. Worker r's training lines (its share minus the held-out ones) form its own
// stream; its k-th batch of `batch` samples is its part of global batch k. Every worker runs the
// same number of steps per epoch: floor(min over shards of training lines / batch), known to all
// from the plan (a newline scan, no parsing). A shard whose bad lines leave it short of that
// wraps to its start. A run resumed at step s skips s batches of the worker's own stream: exact
// onto the same worker count (onto another count the shares change, and each worker continues at
// step s of its new share). Gzip files cannot be split by bytes and are read as 'stream'.
//
// 'stream': the training lines of the whole file form one stream, repeated for each epoch;
// global batch k is stream samples [kG, (k+1)G) with G = batch x workers, and worker r takes the
// contiguous slice [kG + r*batch, kG + (r+1)*batch). So W workers at batch b see exactly the
// samples one worker at batch W*b sees, and a run resumed at step s skips s*G samples whatever the
// worker count. Every worker parses every line (to classify bad lines identically everywhere).
import { CRITEO_CATS, CRITEO_DENSE, parseCriteoLine, isEvalIndex, type Minibatch as CriteoMinibatch, type CriteoStats } from '../data/criteo.ts';
import { numberedLines, isGzip, type NumberedLine } from '../data/lines.ts';
import { planByteShards, shardLines } from '../data/byte-shards.ts';
import type { ModelBatch, ModelConfig, ModelModule } from '../model/model-module.ts';
import type { TrainConfig } from './config.ts';

/** A worker's slice of one global batch: the reader's minibatch without a first line number. */
export type Minibatch = Omit<CriteoMinibatch, 'firstLine'>;

export type DataStats = Omit<CriteoStats, 'samples'> & {
  /** Lines this worker parsed in its first pass ('bytes': its share; 'stream': every line). */
  parsed: number;
  /** How the data was split ('stream' also when a gzip file asked for 'bytes'). */
  split: 'bytes' | 'stream';
};

const MAX_BAD_REPORTED = 20;

function allocate(n: number): Minibatch {
  return { size: n, dense: new Float32Array(n * CRITEO_DENSE), labels: new Float32Array(n), cats: new Uint32Array(n * CRITEO_CATS) };
}

/** The model's inputs for a reader's minibatch, as its module maps the records. */
export function modelBatch(mod: ModelModule, config: ModelConfig, mb: Minibatch): ModelBatch {
  return mod.toBatch({ ...mb, denseWidth: CRITEO_DENSE, catWidth: CRITEO_CATS }, config);
}

export function trainBatches(cfg: TrainConfig, o: { rank: number; workers: number; skipSteps: number }): { batches: AsyncIterable<Minibatch>; stats: () => DataStats } {
  const stats: DataStats = { lines: 0, bad: 0, badLines: [], parsed: 0, split: cfg.dataSplit };
  const b = cfg.batch;
  /** Parses `line` into slot `at` of `into`; false (counted once, in the first pass) for a bad line. */
  const parse = (l: NumberedLine, into: Minibatch, at: number, firstPass: boolean): boolean => {
    if (firstPass) stats.parsed++;
    const label = parseCriteoLine(l.line, cfg.model.rowsPerTable, into.dense, into.cats, at * CRITEO_DENSE, at * CRITEO_CATS);
    if (typeof label === 'string') {
      if (firstPass) {
        stats.bad++;
        if (stats.badLines.length < MAX_BAD_REPORTED) stats.badLines.push({ line: l.lineNo, why: label });
      }
      if (cfg.onBadLine === 'fatal') throw new Error(`${cfg.data}:${l.lineNo}: ${label}`);
      return false;
    }
    into.labels[at] = label;
    return true;
  };

  async function* byBytes(): AsyncGenerator<Minibatch> {
    const plan = await planByteShards(cfg.data, o.workers, cfg.evalEvery);
    const mine = plan[o.rank]!, fewest = Math.min(...plan.map((s) => s.trainLines));
    const perEpoch = Math.floor(fewest / b);
    if (perEpoch === 0) {
      throw new Error(`${cfg.data}: split by bytes among ${o.workers} workers, the smallest share has ${fewest} training lines, fewer than one batch of ${b} (use fewer workers, a smaller --batch, or --data-split stream)`);
    }
    stats.lines = mine.lines;
    let k = 0, firstPass = true; // k: batches made over all epochs
    for (let epoch = 0; cfg.steps > 0 || epoch < cfg.epochs; epoch++) {
      let mb = allocate(b), n = 0, made = 0;
      while (made < perEpoch) {
        let good = 0;
        for await (const l of shardLines(cfg.data, mine)) {
          if (isEvalIndex(l.index, cfg.evalEvery)) continue;
          // Batches before the resume point are parsed too (bad lines decide where they end).
          if (!parse(l, mb, n, firstPass)) continue;
          good++;
          if (++n === b) {
            if (k++ >= o.skipSteps) { yield mb; mb = allocate(b); }
            n = 0;
            if (++made === perEpoch) break;
          }
        }
        firstPass = false;
        if (good === 0) throw new Error(`${cfg.data}: worker ${o.rank}'s share (lines ${mine.firstLineNo}..) has no good training line (${stats.bad} bad)`);
      }
    }
  }

  async function* byStream(): AsyncGenerator<Minibatch> {
    const G = b * o.workers, lo = o.rank * b, skipSamples = o.skipSteps * G;
    let j = 0; // train samples seen, over all epochs
    const scratch = allocate(1);
    // With a step budget the data repeats as often as needed; otherwise `epochs` passes.
    for (let epoch = 0; cfg.steps > 0 || epoch < cfg.epochs; epoch++) {
      let mine = allocate(b), trainInEpoch = 0;
      for await (const l of numberedLines(cfg.data)) {
        if (epoch === 0) stats.lines++;
        if (isEvalIndex(l.index, cfg.evalEvery)) continue;
        const p = j % G;
        const keep = j >= skipSamples && p >= lo && p < lo + b;
        if (!parse(l, keep ? mine : scratch, keep ? p - lo : 0, epoch === 0)) continue;
        trainInEpoch++;
        if (j >= skipSamples && p === G - 1) { yield mine; mine = allocate(b); }
        j++;
      }
      if (trainInEpoch === 0) throw new Error(`${cfg.data}: no training samples (${stats.lines} lines, ${stats.bad} bad)`);
    }
  }

  async function* batches(): AsyncGenerator<Minibatch> {
    if (cfg.dataSplit === 'bytes' && await isGzip(cfg.data)) stats.split = 'stream';
    yield* stats.split === 'bytes' ? byBytes() : byStream();
  }
  return { batches: batches(), stats: () => stats };
}

/** Held-out samples (every `evalEvery`-th line), the first `limit` of them, in batches of `B`. */
export async function* evalBatches(cfg: TrainConfig, B: number, limit: number): AsyncGenerator<Minibatch> {
  let mb = allocate(B), n = 0, total = 0;
  for await (const { line, index } of numberedLines(cfg.data)) {
    if (!isEvalIndex(index, cfg.evalEvery)) continue;
    const label = parseCriteoLine(line, cfg.model.rowsPerTable, mb.dense, mb.cats, n * CRITEO_DENSE, n * CRITEO_CATS);
    if (typeof label === 'string') continue; // counted by the training pass
    mb.labels[n++] = label;
    total++;
    if (n === B) { yield mb; mb = allocate(B); n = 0; }
    if (total >= limit) break;
  }
  if (n > 0) { mb.size = n; yield mb; }
}
