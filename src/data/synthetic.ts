// Synthetic click data in exactly the Criteo layout (see criteo.ts), drawn from a PLANTED model, so
// a training run can be judged against the best achievable AUC instead of a guess. Everything is
// a function of the seed: the same seed writes the same bytes.
//
// The planted model (all randomness from mulberry32 streams derived from the seed):
// - Categorical feature t (26 of them) draws a frequency rank r >= 0 from a Zipf law
//   P(r) ~ (r+1)^-1.1 over [0, rowsPerTable), and maps it to the id perm_t(r) = (a_t r + b_t) mod
//   rowsPerTable (a_t coprime with it), so the frequent ids are scattered, not 0, 1, 2. The hex
//   written is a random 32-bit value congruent to the id mod rowsPerTable, so the reader's
//   int(hex, 16) mod rowsPerTable gives the id back. A few features are empty at a 2-10% rate;
//   an empty field reads as id 0, and the model then uses id 0's parameters too.
// - Dense feature j (13) is a count floor(exp(mu_j + s_j N(0,1))), empty at a per-feature rate
//   (0 for most); I2 is -1 now and then, as in Criteo. The model sees x_j = log(1 + max(count, 0))
//   (empty: 0), exactly what the reader yields, centred by mu_j.
// - logit = bias + scale * ( sum_t w_t[id_t]                             per-(table, id) effects
//                           + sum_j d_j (x_j - mu_j)                      linear dense term
//                           + sum_{(t,u) in PAIRS} <e_t[id_t], e_u[id_u]>  4 table pairs, dim-4 embeddings
//                           + sum_{t in DENSE_TABLES} <e_t[id_t], P (x - mu)> )  2 tables vs dense, P: 4 x 13
//   Table strengths are 1 for 9 tables, 0.5 for 9, 0.2 for 8; the effect of rank r has
//   amplitude strength / (1 + r/8) (embeddings: 0.5 / (1 + r/8)), ranks past TOP_RANKS none. So
//   the signal sits in frequent ids, which a DLRM sees often enough to learn, and in simple
//   effects: the scalar and dense terms alone reach about 0.79 of the planted 0.80 AUC, and a
//   one-pass logistic regression on ids and dense features about 0.78 (200k samples, 1000 rows;
//   the interactions, which DLRM's dot-product layer can express, are the rest). `scale` and
//   `bias` are calibrated on a separate sample so the expected AUC is TARGET_AUC and the positive
//   rate TARGET_RATE, whatever rowsPerTable is.
// - label ~ Bernoulli(sigmoid(logit)). plantedAuc / plantedLogloss score the planted logits on the
//   held-out lines (index i with i % 10 === 9, the reader's split), the bar a trained model meets.
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { stat } from 'node:fs/promises';
import { writeBytesAtomic, writeFileAtomic, writeFully } from '../checkpoint/atomic-file.ts';
import { mulberry32 } from '../util/hash.ts';
import { exactAuc, loglossFromLogits, sigmoid } from '../metrics/classification.ts';
import { CRITEO_CATS, CRITEO_DENSE, isEvalIndex } from './criteo.ts';
import { gcd, modInverse, mulMod, normals, zipfSampler, type Rand } from './sampling.ts';

export { zipfSampler } from './sampling.ts';

export const EVAL_EVERY = 10;
const ZIPF_EXPONENT = 1.1;
const EMB_DIM = 4;
/** Ranks past this carry no parameters (and no memory): the inert long tail. */
const TOP_RANKS = 4096;
const TARGET_AUC = 0.8;
const TARGET_RATE = 0.25;
const CALIBRATION_SAMPLES = 20_000;
const CHUNK_BYTES = 1 << 20;
/** A line is at most 1 + 13 * 12 + 26 * 9 bytes. */
const MAX_LINE_BYTES = 512;

export interface SyntheticOptions {
  out: string;
  samples: number;
  seed: number;
  rowsPerTable: number;
  gzip?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface SyntheticSummary {
  out: string;
  metaPath: string;
  samples: number;
  seed: number;
  rowsPerTable: number;
  gzip: boolean;
  bytes: number;
  positiveRate: number;
  evalSamples: number;
  plantedAuc: number;
  plantedLogloss: number;
}

/** The sidecar written next to the data as `<out>.meta.json`. */
export interface SyntheticMeta {
  format: 'criteo';
  generator: 'hybridps gen-data';
  seed: number;
  samples: number;
  rowsPerTable: number;
  plantedAuc: number;
  plantedLogloss: number;
  positiveRate: number;
  evalEvery: number;
  evalSamples: number;
  gzip: boolean;
  model: { zipfExponent: number; embDim: number; topRanks: number; targetAuc: number; targetRate: number; scale: number; bias: number };
}

/** One sample's model inputs, reused line after line. */
interface Draw {
  ranks: Int32Array;
  /** Ids the model uses: 0 for an empty field. */
  ids: Uint32Array;
  /** 1 where the categorical field is written empty. */
  catEmpty: Uint8Array;
  /** Dense counts as written; NaN: empty. */
  counts: Float64Array;
  /** Transformed dense features, as the reader computes them. */
  x: Float64Array;
}

/** The planted model: its parameters, how it draws features, and the logit it assigns them. */
class PlantedModel {
  readonly perm: { a: number; b: number; rankOfZero: number }[] = [];
  readonly catEmptyRate = new Float64Array(CRITEO_CATS);
  readonly mu = new Float64Array(CRITEO_DENSE);
  readonly sd = new Float64Array(CRITEO_DENSE);
  readonly denseEmptyRate = new Float64Array(CRITEO_DENSE);
  readonly denseW = new Float64Array(CRITEO_DENSE);
  /** Per-(table, rank) scalar effect, ranks below `top`. */
  readonly effect: Float64Array[] = [];
  /** Per-(table, rank) EMB_DIM embedding for tables in an interaction, else empty. */
  readonly emb: Float64Array[] = [];
  readonly pairs: [number, number][] = [];
  readonly denseTables: number[] = [];
  /** EMB_DIM x 13 projection of the dense features for the dense-vs-embedding terms. */
  readonly proj = new Float64Array(EMB_DIM * CRITEO_DENSE);
  readonly top: number;
  scale = 1;
  bias = 0;
  private readonly p = new Float64Array(EMB_DIM);

  constructor(readonly rows: number, seed: number) {
    const rand = mulberry32(seed ^ 0x5eed0001), normal = normals(rand);
    this.top = Math.min(rows, TOP_RANKS);
    const order = Array.from({ length: CRITEO_CATS }, (_, t) => t);
    for (let t = CRITEO_CATS - 1; t > 0; t--) { const k = Math.floor(rand() * (t + 1)); [order[t], order[k]] = [order[k]!, order[t]!]; }
    // Table strengths: a third strong, a third medium, a third weak (in shuffled order).
    const strength = new Float64Array(CRITEO_CATS);
    order.forEach((t, k) => { strength[t] = k < 9 ? 1 : k < 18 ? 0.5 : 0.2; });
    for (let t = 0; t < CRITEO_CATS; t++) {
      let a = 1, b = 0;
      if (rows > 1) {
        do a = Math.floor(rows / 4 + rand() * (rows / 2)); while (a < 1 || gcd(a, rows) !== 1);
        b = Math.floor(rand() * rows);
      }
      // Solve a r + b = 0 (mod rows) for the rank whose id is 0.
      const rankOfZero = rows > 1 ? mulMod(modInverse(a, rows), (rows - b) % rows, rows) : 0;
      this.perm.push({ a, b, rankOfZero });
      const w = new Float64Array(this.top);
      for (let r = 0; r < this.top; r++) w[r] = strength[t]! * decay(r) * normal();
      this.effect.push(w);
    }
    for (let k = 0; k < 6; k++) this.catEmptyRate[order[25 - k]!] = 0.02 + 0.08 * rand();
    // Interactions: 4 pairs among 6 of the strong tables; 2 medium tables against the dense part.
    const inter = order.slice(3, 9);
    this.pairs.push([inter[0]!, inter[1]!], [inter[2]!, inter[3]!], [inter[4]!, inter[5]!], [inter[0]!, inter[3]!]);
    this.denseTables.push(order[9]!, order[12]!);
    for (let t = 0; t < CRITEO_CATS; t++) {
      const used = inter.includes(t) || this.denseTables.includes(t);
      const e = new Float64Array(used ? this.top * EMB_DIM : 0);
      for (let r = 0; r < e.length; r++) e[r] = 0.5 * decay(Math.floor(r / EMB_DIM)) * normal();
      this.emb.push(e);
    }
    for (let j = 0; j < CRITEO_DENSE; j++) {
      this.mu[j] = 0.5 + 3 * rand();
      this.sd[j] = 0.6 + 0.8 * rand();
      this.denseEmptyRate[j] = rand() < 0.4 ? 0.05 + 0.3 * rand() : 0;
      this.denseW[j] = 0.25 * normal();
    }
    for (let k = 0; k < this.proj.length; k++) this.proj[k] = 0.15 * normal();
    this.calibrate(seed);
  }

  newDraw(): Draw {
    return { ranks: new Int32Array(CRITEO_CATS), ids: new Uint32Array(CRITEO_CATS), catEmpty: new Uint8Array(CRITEO_CATS), counts: new Float64Array(CRITEO_DENSE), x: new Float64Array(CRITEO_DENSE) };
  }

  /** Draws one sample's features into `d`. The order of draws is what makes a seed's file reproducible. */
  draw(d: Draw, rand: Rand, normal: () => number, zipf: () => number): void {
    for (let j = 0; j < CRITEO_DENSE; j++) {
      let count = NaN;
      if (rand() >= this.denseEmptyRate[j]!) {
        count = j === 1 && rand() < 0.03 ? -1 : Math.min(Math.floor(Math.exp(this.mu[j]! + this.sd[j]! * normal())), 2 ** 31);
      }
      d.counts[j] = count;
      d.x[j] = Number.isNaN(count) ? 0 : Math.log1p(Math.max(count, 0)); // the reader's transform (before float32)
    }
    for (let t = 0; t < CRITEO_CATS; t++) {
      const { a, b, rankOfZero } = this.perm[t]!;
      if (rand() < this.catEmptyRate[t]!) { d.ranks[t] = rankOfZero; d.ids[t] = 0; d.catEmpty[t] = 1; continue; }
      const r = zipf() - 1;
      d.ranks[t] = r;
      d.ids[t] = (mulMod(a, r, this.rows) + b) % this.rows;
      d.catEmpty[t] = 0;
    }
  }

  /** The unscaled logit (scale and bias not applied). */
  raw(d: Draw): number {
    let z = 0;
    for (let t = 0; t < CRITEO_CATS; t++) { const r = d.ranks[t]!; if (r < this.top) z += this.effect[t]![r]!; }
    for (let j = 0; j < CRITEO_DENSE; j++) z += this.denseW[j]! * (d.x[j]! - this.mu[j]!);
    for (const [t, u] of this.pairs) {
      const rt = d.ranks[t]!, ru = d.ranks[u]!;
      if (rt >= this.top || ru >= this.top) continue;
      const et = this.emb[t]!, eu = this.emb[u]!;
      for (let k = 0; k < EMB_DIM; k++) z += et[rt * EMB_DIM + k]! * eu[ru * EMB_DIM + k]!;
    }
    if (this.denseTables.length) {
      const p = this.p;
      for (let k = 0; k < EMB_DIM; k++) {
        let s = 0;
        for (let j = 0; j < CRITEO_DENSE; j++) s += this.proj[k * CRITEO_DENSE + j]! * (d.x[j]! - this.mu[j]!);
        p[k] = s;
      }
      for (const t of this.denseTables) {
        const r = d.ranks[t]!;
        if (r >= this.top) continue;
        for (let k = 0; k < EMB_DIM; k++) z += this.emb[t]![r * EMB_DIM + k]! * p[k]!;
      }
    }
    return z;
  }

  logit(d: Draw): number { return this.bias + this.scale * this.raw(d); }

  /** Picks scale and bias on a separate sample: expected AUC TARGET_AUC, positive rate TARGET_RATE. */
  private calibrate(seed: number): void {
    const rand = mulberry32(seed ^ 0x5eed0002), normal = normals(rand), zipf = zipfSampler(this.rows, ZIPF_EXPONENT, rand);
    const d = this.newDraw(), z = new Float64Array(CALIBRATION_SAMPLES);
    for (let i = 0; i < z.length; i++) { this.draw(d, rand, normal, zipf); z[i] = this.raw(d); }
    const order = Array.from(z.keys()).sort((i, j) => z[i]! - z[j]!);
    const sorted = Float64Array.from(order, (i) => z[i]!);
    // Newton on mean sigmoid(bias + scale z) = TARGET_RATE: increasing and convex-concave in bias,
    // converging in a few steps from the logit of the rate.
    const rateBias = (scale: number): number => {
      let bias = Math.log(TARGET_RATE / (1 - TARGET_RATE));
      for (let it = 0; it < 50; it++) {
        let f = 0, df = 0;
        for (let i = 0; i < sorted.length; i++) { const p = sigmoid(bias + scale * sorted[i]!); f += p; df += p * (1 - p); }
        const step = (f / sorted.length - TARGET_RATE) / Math.max(df / sorted.length, 1e-12);
        bias -= Math.max(-5, Math.min(5, step));
        if (Math.abs(step) < 1e-10) break;
      }
      return bias;
    };
    // Expected AUC when each sample is positive with its own probability: sum over ordered pairs
    // p_i (1 - p_j) [z_i > z_j] / (sum p)(sum 1 - p), one pass over the ascending scores.
    const expectedAuc = (scale: number, bias: number): number => {
      let negBelow = 0, u = 0, sp = 0, sn = 0;
      for (let i = 0; i < sorted.length; i++) {
        const p = sigmoid(bias + scale * sorted[i]!);
        u += p * negBelow;
        negBelow += 1 - p;
        sp += p; sn += 1 - p;
      }
      return u / (sp * sn);
    };
    let lo = 0, hi = 20;
    for (let it = 0; it < 30; it++) {
      const mid = (lo + hi) / 2;
      if (expectedAuc(mid, rateBias(mid)) < TARGET_AUC) lo = mid; else hi = mid;
    }
    this.scale = (lo + hi) / 2;
    this.bias = rateBias(this.scale);
  }
}

/** One sample as the model sees it: what plantedSamples fills in. */
export interface PlantedSample {
  /** The 26 categorical ids (0 for an empty field). */
  ids: Uint32Array;
  /** The 13 dense features after the reader's transform, log(1 + max(count, 0)) (empty: 0). */
  dense: Float32Array;
  label: number;
}

/**
 * Samples from the planted model in memory, with exactly the distribution generateSynthetic
 * writes (the same model for the same seed: Zipf ranks through the per-table permutations, empty
 * fields, dense counts, labels), for benchmarks that need click-log-like ids without a file.
 * `stream` picks an independent sample stream (one per worker, say); it is not the file's stream.
 */
export function plantedSamples(rowsPerTable: number, seed: number, stream = 0): (into: PlantedSample) => void {
  checkOptions({ out: '-', samples: 1, seed, rowsPerTable });
  const model = new PlantedModel(rowsPerTable, seed);
  const rand = mulberry32((seed ^ 0x5eed0004) + Math.imul(stream, 0x9e3779b9)), normal = normals(rand), zipf = zipfSampler(rowsPerTable, ZIPF_EXPONENT, rand);
  const d = model.newDraw();
  return (into) => {
    model.draw(d, rand, normal, zipf);
    into.ids.set(d.ids);
    into.dense.set(d.x);
    into.label = rand() < sigmoid(model.logit(d)) ? 1 : 0;
  };
}

/** Parameter amplitude by frequency rank: frequent ids matter most; learnable ones, that is. */
function decay(rank: number): number { return 1 / (1 + rank / 8); }

/** Formats lines straight into bytes: a string per field costs most of the generator's time. */
class ByteWriter {
  private buf = Buffer.allocUnsafe(CHUNK_BYTES);
  private n = 0;
  byte(c: number): void { this.buf[this.n++] = c; }
  /** A decimal integer (|v| < 2^53). */
  int(v: number): void {
    if (v < 0) { this.byte(45); v = -v; }
    const start = this.n;
    do { this.buf[this.n++] = 48 + (v % 10); v = Math.floor(v / 10); } while (v > 0);
    this.buf.subarray(start, this.n).reverse();
  }
  /** 8 lowercase hex digits of a 32-bit value, zero-padded, as Criteo writes them. */
  hex8(v: number): void {
    for (let s = 28; s >= 0; s -= 4) { const d = (v >>> s) & 15; this.buf[this.n++] = d < 10 ? 48 + d : 87 + d; }
  }
  full(): boolean { return this.n > CHUNK_BYTES - MAX_LINE_BYTES; }
  /** The bytes so far; writing continues into a fresh buffer (the stream may still hold this one). */
  take(): Buffer {
    const out = this.buf.subarray(0, this.n);
    this.buf = Buffer.allocUnsafe(CHUNK_BYTES);
    this.n = 0;
    return out;
  }
}

function checkOptions(o: SyntheticOptions): void {
  if (!Number.isInteger(o.samples) || o.samples < 1) throw new RangeError(`samples ${o.samples}: must be a positive integer`);
  if (!Number.isInteger(o.seed)) throw new RangeError(`seed ${o.seed}: must be an integer`);
  if (!Number.isInteger(o.rowsPerTable) || o.rowsPerTable < 1 || o.rowsPerTable > 2 ** 32) throw new RangeError(`rowsPerTable ${o.rowsPerTable}: must be an integer in [1, 2^32]`);
  if (!o.out) throw new RangeError('out: a file path is needed');
}

/**
 * Writes `samples` lines drawn from the planted model to `out` (atomically: a reader never sees a
 * partial file), then the sidecar `<out>.meta.json`. Memory is constant apart from the held-out
 * logits (one float per 10 lines).
 */
export async function generateSynthetic(o: SyntheticOptions): Promise<SyntheticSummary> {
  checkOptions(o);
  const model = new PlantedModel(o.rowsPerTable, o.seed);
  const R = o.rowsPerTable;
  const rand = mulberry32(o.seed ^ 0x5eed0003), normal = normals(rand), zipf = zipfSampler(R, ZIPF_EXPONENT, rand);
  const evalN = Math.floor(o.samples / EVAL_EVERY);
  const evalLogits = new Float64Array(evalN), evalLabels = new Uint8Array(evalN);
  let positives = 0, e = 0;
  const d = model.newDraw();
  const w = new ByteWriter();
  function* chunks(): Generator<Buffer> {
    for (let i = 0; i < o.samples; i++) {
      model.draw(d, rand, normal, zipf);
      const z = model.logit(d);
      const y = rand() < sigmoid(z) ? 1 : 0;
      positives += y;
      if (isEvalIndex(i, EVAL_EVERY)) { evalLogits[e] = z; evalLabels[e++] = y; }
      w.byte(y ? 49 : 48);
      for (let j = 0; j < CRITEO_DENSE; j++) {
        w.byte(9);
        const c = d.counts[j]!;
        if (!Number.isNaN(c)) w.int(c);
      }
      for (let t = 0; t < CRITEO_CATS; t++) {
        w.byte(9);
        if (d.catEmpty[t]) continue;
        // A uniform pick among the 32-bit values congruent to the id: id + k R, k <= (2^32 - 1 - id) / R.
        const id = d.ids[t]!;
        const k = Math.floor(rand() * (Math.floor((4294967295 - id) / R) + 1));
        w.hex8(id + k * R);
      }
      w.byte(10);
      if (w.full() || i === o.samples - 1) {
        yield w.take();
        o.onProgress?.(i + 1, o.samples); // about every 4000 lines
      }
    }
  }
  await writeFileAtomic(o.out, async (fh) => {
    // A sink onto the handle writeFileAtomic owns (it syncs and closes it afterwards).
    let at = 0;
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) { writeFully(fh, chunk, at).then(() => { at += chunk.length; done(); }, done); },
    });
    const source = Readable.from(chunks(), { objectMode: false });
    if (o.gzip) await pipeline(source, createGzip({ level: 6 }), sink);
    else await pipeline(source, sink);
  });
  const plantedAuc = exactAuc(evalLogits, evalLabels), plantedLogloss = loglossFromLogits(evalLogits, evalLabels);
  const positiveRate = positives / o.samples;
  const meta: SyntheticMeta = {
    format: 'criteo', generator: 'hybridps gen-data', seed: o.seed, samples: o.samples, rowsPerTable: R,
    plantedAuc, plantedLogloss, positiveRate, evalEvery: EVAL_EVERY, evalSamples: evalN, gzip: !!o.gzip,
    model: { zipfExponent: ZIPF_EXPONENT, embDim: EMB_DIM, topRanks: model.top, targetAuc: TARGET_AUC, targetRate: TARGET_RATE, scale: model.scale, bias: model.bias },
  };
  const metaPath = `${o.out}.meta.json`;
  await writeBytesAtomic(metaPath, JSON.stringify(meta, null, 2) + '\n');
  return {
    out: o.out, metaPath, samples: o.samples, seed: o.seed, rowsPerTable: R, gzip: !!o.gzip, bytes: (await stat(o.out)).size,
    positiveRate, evalSamples: evalN, plantedAuc, plantedLogloss,
  };
}
