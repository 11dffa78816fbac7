// Wide & Deep (Cheng et al. 2016) on the Criteo layout, declared as data for ModelRunner.
// - Wide: sparse logistic regression over hashed features in ONE parameter-server table of
//   1-float rows, trained with FTRL-Proximal on the servers (the paper's wide-part optimizer, and
//   the OSDI'14 parameter server's headline workload). A sample's bag holds its 26 categorical ids,
//   its 13 dense features bucketized, and the crosses of the listed column pairs, each hashed
//   into `wideRows` rows; the gather (embedding_bag, sum) gives the wide logit.
// - Deep: one embedding table per categorical column (AdaGrad on the servers, or the run's
//   --optimizer emb=...) and an MLP over the concatenated embeddings (the run's dense optimizer,
//   AdaGrad by default).
// - logit = wide + deep: the one kernel of its own (shaders/wd_add.wgsl); everything else is the
//   repo's (embedding_bag, linear_*, bce_fwd_bwd, sum_reduce, segment_sum). The sum's backward is
//   the identity, so the head's backward and the wide rows' segment_sum both read d.logits.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BufferDecl, DenseParamDecl, KernelCall, ModelSpec, TableDecl } from '../../src/model/model-spec.ts';
import { REPO_SHADERS } from '../../src/model/dlrm.ts';
import { denseOffsetName } from '../../src/model/model-spec.ts';
import { categoricalColumn, defineModel, type ModelSpecOptions, type RecordBatch } from '../../src/model/model-module.ts';

export const WD_SHADERS = join(dirname(fileURLToPath(import.meta.url)), 'shaders');

export interface WideDeepConfig {
  [field: string]: unknown;
  /** Categorical columns with a deep embedding table (the first `tables`). */
  tables: number;
  dim: number;
  /** Hidden widths of the deep MLP (its input is tables x dim, its output the logit); the last a multiple of 4. */
  hidden: number[];
  rowsPerTable: number;
  /** Rows of the wide table (hashed features and crosses). */
  wideRows: number;
  /** Pairs of categorical columns crossed in the wide part. */
  crosses: [number, number][];
  /** Buckets per dense feature in the wide part (of log(1 + count), width 0.5). */
  denseBuckets: number;
  /** FTRL-Proximal of the wide table. */
  ftrl: { alpha: number; beta: number; l1: number; l2: number };
}

const CATS = 26, DENSE = 13;

/** Features of one sample in the wide part: its categorical ids, bucketized dense features, crosses. */
export const wideBag = (c: WideDeepConfig) => CATS + DENSE + c.crosses.length;

// A 32-bit integer mix (murmur3's finalizer) of (feature kind, value): the wide table's row.
function mix(a: number, b: number): number {
  let h = (Math.imul(a, 0x9e3779b1) ^ b) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The wide part's hashed row ids for each record, `wideBag(c)` per sample. */
export function wideIds(r: RecordBatch, c: WideDeepConfig): Float64Array {
  const n = wideBag(c), ids = new Float64Array(r.size * n);
  for (let b = 0; b < r.size; b++) {
    const cat = (t: number) => r.cats[b * r.catWidth + t]!;
    let k = b * n;
    for (let t = 0; t < CATS; t++) ids[k++] = mix(1 + t, cat(t)) % c.wideRows;
    for (let j = 0; j < DENSE; j++) {
      const bucket = Math.min(c.denseBuckets - 1, Math.floor(r.dense[b * r.denseWidth + j]! * 2));
      ids[k++] = mix(100 + j, bucket) % c.wideRows;
    }
    c.crosses.forEach(([u, v], i) => { ids[k++] = mix(mix(1000 + i, cat(u)), cat(v)) % c.wideRows; });
  }
  return ids;
}

export function wideDeepSpec(c: WideDeepConfig, o: ModelSpecOptions): ModelSpec {
  const T = c.tables, D = c.dim, widths = [T * D, ...c.hidden, 1];
  const tables: TableDecl[] = Array.from({ length: T }, (_, t) => ({
    name: `deep${t}`, dim: D, rows: c.rowsPerTable, init: 'uniform', initScale: 0.05,
    optimizer: o.optimizer, hyper: o.hyper, consistency: o.consistency, staleness: o.staleness,
  }));
  tables.push({ name: 'wide', dim: 1, rows: c.wideRows, init: 'zeros', initScale: 0, optimizer: 'ftrl', hyper: { ...c.ftrl }, consistency: o.consistency, staleness: o.staleness });
  const layers = widths.slice(1).map((out, l) => ({ l, inDim: widths[l]!, outDim: out, x: l === 0 ? 'emb' : `h${l}`, y: l === widths.length - 2 ? 'deep_logit' : `h${l + 1}` }));
  const dense: DenseParamDecl[] = layers.flatMap((L) => [
    { name: `deep.${L.l}.weight`, shape: [L.outDim, L.inDim], init: { kind: 'uniform', scale: Math.sqrt(6 / (L.inDim + L.outDim)) } },
    { name: `deep.${L.l}.bias`, shape: [L.outDim], init: { kind: 'uniform', scale: Math.sqrt(1 / L.outDim) } },
  ]);
  const buffers: BufferDecl[] = [
    { name: 'emb', shape: ['B', T * D] }, { name: 'd.emb', shape: ['B', T * D] },
    { name: 'wide_logit', shape: ['B'] }, { name: 'deep_logit', shape: ['B'] },
    { name: 'logits', shape: ['B'] }, { name: 'd.logits', shape: ['B'] },
    { name: 'lossvec', shape: ['B'] }, { name: 'loss', shape: [1] },
    ...layers.slice(0, -1).flatMap((L) => [{ name: L.y, shape: ['B', L.outDim] }, { name: `d.${L.y}`, shape: ['B', L.outDim] }]),
  ];
  const w = (L: { l: number }) => `deep.${L.l}.weight`, bias = (L: { l: number }) => `deep.${L.l}.bias`;
  const head = layers[layers.length - 1]!;
  const forward: KernelCall[] = [
    ...tables.slice(0, T).map((t, i): KernelCall => ({ kernel: 'embedding_bag', params: { B: 'B', D, outStride: T * D, outOffset: i * D, mode: 0 }, bind: [`${t.name}.rows`, `${t.name}.index`, `${t.name}.offsets`, 'emb'] })),
    { kernel: 'embedding_bag', params: { B: 'B', D: 1, outStride: 1, outOffset: 0, mode: 0 }, bind: ['wide.rows', 'wide.index', 'wide.offsets', 'wide_logit'] },
    ...layers.slice(0, -1).map((L): KernelCall => ({ kernel: 'linear_fwd', params: { M: 'B', N: L.outDim, K: L.inDim, relu: 1 }, bind: [L.x, w(L), bias(L), L.y] })),
    { kernel: 'linear_fwd_n1', params: { M: 'B', K: head.inDim, relu: 0 }, bind: [head.x, w(head), bias(head), head.y] },
    { kernel: 'wd_add', params: { B: 'B' }, bind: ['wide_logit', 'deep_logit', 'logits'] },
  ];
  const at = (L: { l: number }) => ({ wAt: denseOffsetName(w(L)), bAt: denseOffsetName(bias(L)) });
  const backward: KernelCall[] = [
    { kernel: 'bce_fwd_bwd', params: { B: 'B' }, bind: ['logits', 'labels', 'lossvec', 'd.logits'] },
    { kernel: 'sum_reduce', params: { n: 'B', scale: '1/B' }, bind: ['lossvec', 'loss'] },
    { kernel: 'linear_bwd_n1', params: { M: 'B', K: head.inDim, relu: 0, input: 1, ...at(head) }, bind: ['d.logits', head.x, w(head), head.y, `d.${head.x}`, 'dense.grad'] },
    ...layers.slice(0, -1).reverse().flatMap((L): KernelCall[] => [
      { kernel: 'linear_bwd_weight', params: { M: 'B', N: L.outDim, K: L.inDim, relu: 1, ...at(L) }, bind: [`d.${L.y}`, L.x, L.y, 'dense.grad'] },
      { kernel: 'linear_bwd_input', params: { M: 'B', N: L.outDim, K: L.inDim, relu: 1 }, bind: [`d.${L.y}`, w(L), L.y, `d.${L.x}`] },
    ]),
    ...tables.slice(0, T).map((t, i): KernelCall => ({ kernel: 'segment_sum', params: { U: `U_${t.name}`, D, outStride: T * D, outOffset: i * D, mode: 0 }, bind: [`${t.name}.csrOffsets`, `${t.name}.csrItems`, `${t.name}.offsets`, 'd.emb', `${t.name}.grad`] })),
    { kernel: 'segment_sum', params: { U: 'U_wide', D: 1, outStride: 1, outOffset: 0, mode: 0 }, bind: ['wide.csrOffsets', 'wide.csrItems', 'wide.offsets', 'd.logits', 'wide.grad'] },
  ];
  return {
    name: 'wide-deep', config: { T, D }, kernelDirs: [WD_SHADERS, REPO_SHADERS], tables, dense,
    inputs: [{ name: 'labels', shape: ['B'] }], buffers, forward, backward, loss: 'loss', output: 'logits',
  };
}

/** The model module: sample.json names it. */
export const model = defineModel<WideDeepConfig>({
  name: 'wide-deep',
  defaults: {
    tables: 26, dim: 8, hidden: [64, 16], rowsPerTable: 1000, wideRows: 1 << 18, denseBuckets: 16,
    crosses: [[0, 1], [2, 3], [4, 5], [6, 7], [0, 2], [1, 3], [8, 9], [10, 11]],
    ftrl: { alpha: 0.1, beta: 1, l1: 0, l2: 0 },
  },
  validate(c) {
    const bad: string[] = [];
    const int = (v: unknown, name: string, lo: number, hi = Infinity) => { if (!Number.isInteger(v) || (v as number) < lo || (v as number) > hi) bad.push(`model.${name} must be an integer in ${lo}..${hi}, got ${JSON.stringify(v)}`); };
    int(c.tables, 'tables', 1, CATS); int(c.dim, 'dim', 1); int(c.wideRows, 'wideRows', 1, 2 ** 32); int(c.denseBuckets, 'denseBuckets', 1);
    if (!Array.isArray(c.hidden) || c.hidden.length < 1) bad.push('model.hidden must list at least one hidden width');
    else { c.hidden.forEach((h, i) => int(h, `hidden[${i}]`, 1)); if (c.hidden[c.hidden.length - 1]! % 4 !== 0) bad.push(`model.hidden's last width must be a multiple of 4 (the head's kernel reads vec4s), got ${c.hidden[c.hidden.length - 1]}`); }
    if (!Array.isArray(c.crosses)) bad.push('model.crosses must be a list of [column, column] pairs');
    else c.crosses.forEach((p, i) => { if (!Array.isArray(p) || p.length !== 2) bad.push(`model.crosses[${i}] must be [column, column]`); else p.forEach((x, k) => int(x, `crosses[${i}][${k}]`, 0, CATS - 1)); });
    if (!c.ftrl || !(c.ftrl.alpha > 0)) bad.push('model.ftrl.alpha must be > 0');
    return bad;
  },
  spec: (c, o) => wideDeepSpec(c, o),
  toBatch(r, c) {
    const n = wideBag(c);
    return {
      B: r.size, inputs: { labels: r.labels.subarray(0, r.size) },
      tables: [
        ...Array.from({ length: c.tables }, (_, t) => categoricalColumn(r, t)),
        { ids: wideIds(r, c), offsets: Uint32Array.from({ length: r.size + 1 }, (_, b) => b * n) },
      ],
    };
  },
});
