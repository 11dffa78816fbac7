// Which samples each worker trains on, step by step. The training lines of the file (every line
// but the held-out ones) form one stream, repeated for each epoch; global batch k is stream
// samples [kG, (k+1)G) with G = batch x workers, and worker r takes the contiguous slice
// [kG + r*batch, kG + (r+1)*batch). So W workers at batch b see exactly the samples one worker at
// batch W*b sees, a run resumed at step s skips s*G samples whatever the worker count, and a
// trailing partial global batch is dropped by every worker alike.
//
// Every worker parses every line (to classify bad lines identically everywhere); only its own
// samples are kept. That costs a few microseconds a line, fine for files of millions of lines.
import { CRITEO_CATS, CRITEO_DENSE, parseCriteoLine, isEvalIndex, type Minibatch as CriteoMinibatch, type CriteoStats } from '../data/criteo.ts';
import { numberedLines } from '../data/lines.ts';
import type { ModelBatch, ModelConfig, ModelModule } from '../model/model-module.ts';
import type { TrainConfig } from './config.ts';

/** A worker's slice of one global batch: the reader's minibatch without a first line number. */
export type Minibatch = Omit<CriteoMinibatch, 'firstLine'>;

export type DataStats = Omit<CriteoStats, 'samples'>;

const MAX_BAD_REPORTED = 20;

function allocate(n: number): Minibatch {
  return { size: n, dense: new Float32Array(n * CRITEO_DENSE), labels: new Float32Array(n), cats: new Uint32Array(n * CRITEO_CATS) };
}

/** The model's inputs for a reader's minibatch, as its module maps the records. */
export function modelBatch(mod: ModelModule, config: ModelConfig, mb: Minibatch): ModelBatch {
  return mod.toBatch({ ...mb, denseWidth: CRITEO_DENSE, catWidth: CRITEO_CATS }, config);
}

export function trainBatches(cfg: TrainConfig, o: { rank: number; workers: number; skipSamples: number }): { batches: AsyncIterable<Minibatch>; stats: () => DataStats } {
  const stats: DataStats = { lines: 0, bad: 0, badLines: [] };
  const b = cfg.batch, G = b * o.workers, lo = o.rank * b;
  async function* batches(): AsyncGenerator<Minibatch> {
    let j = 0; // train samples seen, over all epochs
    const scratch = allocate(1);
    // With a step budget the data repeats as often as needed; otherwise `epochs` passes.
    for (let epoch = 0; cfg.steps > 0 || epoch < cfg.epochs; epoch++) {
      let mine = allocate(b), trainInEpoch = 0;
      for await (const { line, lineNo, index } of numberedLines(cfg.data)) {
        if (epoch === 0) stats.lines++;
        if (isEvalIndex(index, cfg.evalEvery)) continue;
        const p = j % G;
        const keep = j >= o.skipSamples && p >= lo && p < lo + b;
        const into = keep ? mine : scratch, at = keep ? p - lo : 0;
        const label = parseCriteoLine(line, cfg.model.rowsPerTable, into.dense, into.cats, at * CRITEO_DENSE, at * CRITEO_CATS);
        if (typeof label === 'string') {
          if (epoch === 0) {
            stats.bad++;
            if (stats.badLines.length < MAX_BAD_REPORTED) stats.badLines.push({ line: lineNo, why: label });
          }
          if (cfg.onBadLine === 'fatal') throw new Error(`${cfg.data}:${lineNo}: ${label}`);
          continue;
        }
        into.labels[at] = label;
        trainInEpoch++;
        if (j >= o.skipSamples && p === G - 1) { yield mine; mine = allocate(b); }
        j++;
      }
      if (trainInEpoch === 0) throw new Error(`${cfg.data}: no training samples (${stats.lines} lines, ${stats.bad} bad)`);
    }
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
