// A factorization machine (Rendle 2010) declared as data for ModelRunner, with its own WGSL
// kernels in ./shaders (fm_fwd, fm_bwd) and the repo's for the rest (embedding_bag, bce_fwd_bwd,
// sum_reduce, segment_sum). One table per field; a row is [w_i, v_i(1..K)], so the linear and the
// factor terms are pulled, pushed and updated together on the parameter servers.
//
// With `dense` > 0 the logit also gets a linear term over that many dense features (the repo's
// linear_fwd_n1 / linear_bwd_n1 with one output, a dense weight vector and the bias, trained by the
// dense path: allreduce in hybrid mode, the servers in pure-PS): the Criteo-layout planted model
// has one, and without it the FM stopped 0.053 AUC short of the planted model's (0.746 vs 0.799).
//
// `model` makes it a model module (src/model/model-module.ts), which sample.json names, so
// `hybridps launch samples/custom-fm` trains it on Criteo-layout data: field f is categorical
// column f, dense feature j is dense column j.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KernelCall, ModelSpec, TableDecl } from '../../src/model/model-spec.ts';
import { REPO_SHADERS } from '../../src/model/dlrm.ts';
import { categoricalColumn, defineModel, type ModelSpecOptions, type RecordBatch } from '../../src/model/model-module.ts';
import { CRITEO_DENSE } from '../../src/data/criteo.ts';

export const FM_SHADERS = join(dirname(fileURLToPath(import.meta.url)), 'shaders');

export interface FmConfig {
  /** Categorical fields (one table each). */
  fields: number;
  /** Factor size K (rows are K+1 wide). */
  k: number;
  rowsPerField: number;
  /** Dense features in a linear term added to the logit (input `dense_x` [B, dense]); 0: none. */
  dense?: number;
  lr?: number;
  initScale?: number;
}

/** `o`: the run's choice of table optimizer and consistency (default AdaGrad at `lr`, BSP). */
export function fmSpec(c: FmConfig, o?: ModelSpecOptions): ModelSpec {
  const W = c.k + 1, F = c.fields;
  const tables: TableDecl[] = Array.from({ length: F }, (_, f) => ({
    name: `field${f}`, dim: W, rows: c.rowsPerField, init: 'uniform', initScale: c.initScale ?? 0.05,
    optimizer: o?.optimizer ?? 'adagrad', hyper: o?.hyper ?? { lr: c.lr ?? 0.1 }, consistency: o?.consistency ?? 'bsp', staleness: o?.staleness ?? 0,
  }));
  const gather: KernelCall[] = tables.map((t, f) => ({
    kernel: 'embedding_bag', params: { B: 'B', D: W, outStride: F * W, outOffset: f * W, mode: 0 },
    bind: [`${t.name}.rows`, `${t.name}.index`, `${t.name}.offsets`, 'e'],
  }));
  const scatter: KernelCall[] = tables.map((t, f) => ({
    kernel: 'segment_sum', params: { U: `U_${t.name}`, D: W, outStride: F * W, outOffset: f * W, mode: 0 },
    bind: [`${t.name}.csrOffsets`, `${t.name}.csrItems`, `${t.name}.offsets`, 'de', `${t.name}.grad`],
  }));
  // The bias: w0 alone, or the linear term's bias (then linear_fwd_n1 writes w0 + x.w per sample).
  const D = c.dense ?? 0;
  const denseTerm = D > 0;
  return {
    name: 'custom-fm',
    config: { F, K: c.k, D },
    kernelDirs: [FM_SHADERS, REPO_SHADERS],
    tables,
    dense: denseTerm
      ? [{ name: 'wd', shape: [1, 'D'], init: { kind: 'zeros' } }, { name: 'w0', shape: [1], init: { kind: 'zeros' } }]
      : [{ name: 'w0', shape: [1], init: { kind: 'zeros' } }],
    inputs: [...(denseTerm ? [{ name: 'dense_x', shape: ['B', 'D'] }] : []), { name: 'labels', shape: ['B'] }],
    buffers: [
      { name: 'e', shape: ['B', 'F * (K + 1)'] },
      { name: 'de', shape: ['B', 'F * (K + 1)'] },
      ...(denseTerm ? [{ name: 'lin', shape: ['B'] }] : []),
      { name: 'logits', shape: ['B'] },
      { name: 'dlogits', shape: ['B'] },
      { name: 'lossvec', shape: ['B'] },
      { name: 'loss', shape: [1] },
    ],
    forward: [
      ...gather,
      ...(denseTerm
        ? [
          { kernel: 'linear_fwd_n1', params: { M: 'B', K: 'D', relu: 0 }, bind: ['dense_x', 'wd', 'w0', 'lin'] },
          { kernel: 'fm_fwd', params: { B: 'B', F: 'F', K: 'K', baseStride: 1 }, bind: ['e', 'lin', 'logits'] },
        ]
        : [{ kernel: 'fm_fwd', params: { B: 'B', F: 'F', K: 'K' }, bind: ['e', 'w0', 'logits'] }]),
    ],
    backward: [
      { kernel: 'bce_fwd_bwd', params: { B: 'B' }, bind: ['logits', 'labels', 'lossvec', 'dlogits'] },
      { kernel: 'sum_reduce', params: { n: 'B', scale: '1/B' }, bind: ['lossvec', 'loss'] },
      // dW and db of the linear term in one dispatch (input 0: no gradient for the features, so
      // dx binds lossvec, which it leaves alone; y is read only under relu).
      denseTerm
        ? { kernel: 'linear_bwd_n1', params: { M: 'B', K: 'D', relu: 0, input: 0, wAt: 'offset_wd', bAt: 'offset_w0' }, bind: ['dlogits', 'dense_x', 'wd', 'logits', 'lossvec', 'dense.grad'] }
        : { kernel: 'sum_reduce', params: { n: 'B', scale: 1 }, bind: ['dlogits', 'w0.grad'] },
      { kernel: 'fm_bwd', params: { B: 'B', F: 'F', K: 'K' }, bind: ['e', 'dlogits', 'de'] },
      ...scatter,
    ],
    loss: 'loss',
    output: 'logits',
  };
}

/**
 * Synthetic click data with a planted FM structure: a hidden factor per (field, id) and the label
 * drawn from sigmoid of their pairwise interactions, so an FM can learn it.
 */
export function syntheticFm(c: FmConfig, seed = 1) {
  let a = seed >>> 0;
  const r = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const hidden = Array.from({ length: c.fields }, () => Array.from({ length: c.rowsPerField }, () => r() * 2 - 1));
  return (B: number) => {
    const ids = Array.from({ length: c.fields }, () => new Float64Array(B));
    const labels = new Float32Array(B);
    for (let b = 0; b < B; b++) {
      let s = 0;
      for (let f = 0; f < c.fields; f++) {
        const id = Math.floor(r() * c.rowsPerField);
        ids[f][b] = id;
        s += hidden[f][id];
      }
      const logit = 2.5 * s; // strong, learnable signal
      labels[b] = r() < 1 / (1 + Math.exp(-logit)) ? 1 : 0;
    }
    return { B, inputs: { labels }, tables: ids.map((x) => ({ ids: x })) };
  };
}

/**
 * The model module: `fields` categorical columns of the Criteo layout (ids mod `rowsPerTable`) and
 * its first `dense` dense columns in the linear term.
 */
export const model = defineModel<{ fields: number; k: number; dense: number; rowsPerTable: number; initScale: number }>({
  name: 'custom-fm',
  defaults: { fields: 26, k: 8, dense: CRITEO_DENSE, rowsPerTable: 1000, initScale: 0.05 },
  validate(c) {
    const bad: string[] = [];
    if (!Number.isInteger(c.fields) || c.fields < 1 || c.fields > 26) bad.push(`model.fields must be 1..26 (the Criteo layout's categorical columns), got ${JSON.stringify(c.fields)}`);
    if (!Number.isInteger(c.k) || c.k < 1) bad.push(`model.k must be an integer >= 1, got ${JSON.stringify(c.k)}`);
    if (!Number.isInteger(c.dense) || c.dense < 0 || c.dense > CRITEO_DENSE) bad.push(`model.dense must be 0..${CRITEO_DENSE} (the Criteo layout's dense columns in the linear term; 0: none), got ${JSON.stringify(c.dense)}`);
    if (!(c.initScale > 0)) bad.push(`model.initScale must be > 0, got ${JSON.stringify(c.initScale)}`);
    return bad;
  },
  spec: (c, o) => fmSpec({ fields: c.fields, k: c.k, dense: c.dense, rowsPerField: c.rowsPerTable, initScale: c.initScale }, o),
  toBatch: (r, c) => ({
    B: r.size,
    inputs: { labels: r.labels.subarray(0, r.size), ...(c.dense > 0 ? { dense_x: denseColumns(r, c.dense) } : {}) },
    tables: Array.from({ length: c.fields }, (_, f) => categoricalColumn(r, f)),
  }),
});

/** The first `n` dense columns, [B, n] row-major (a view when they are all of them). */
function denseColumns(r: RecordBatch, n: number): Float32Array {
  if (n === r.denseWidth) return r.dense.subarray(0, r.size * n);
  const out = new Float32Array(r.size * n);
  for (let b = 0; b < r.size; b++) out.set(r.dense.subarray(b * r.denseWidth, b * r.denseWidth + n), b * n);
  return out;
}
