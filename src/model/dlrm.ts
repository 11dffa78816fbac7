// DLRM (facebookresearch/dlrm, dot interaction) declared as data for ModelRunner:
// bottom MLP over the dense features -> z; one pooled embedding per table; interaction =
// [z, dot(v_i, v_j) for i in 1..F-1, j < i] with v_0 = z; top MLP -> logit; BCE on the logit.
// ReLU after every layer except the last top one. W[out][in] row-major, then b[out], bottom
// layers first, then top layers (the dense vector layout of dlrm-reference.ts).
import { denseOffsetName, type BufferDecl, type ConsistencyName, type DenseParamDecl, type Expr, type KernelCall, type ModelSpec, type OptimizerName, type TableDecl } from './model-spec.ts';
import { SHADER_DIR } from '../util/package-files.ts';

export const REPO_SHADERS = SHADER_DIR;

export interface DlrmConfig {
  numDense: number;
  numTables: number;
  dim: number;
  /** Bottom MLP widths including its input (= numDense) and output (= dim): 13-64-16 is [13, 64, 16]. */
  bottom: number[];
  /** Top MLP widths after the interaction (its input is implied), ending in 1: 64-1 is [64, 1]. */
  top: number[];
  rowsPerTable: number;
}

export interface DlrmOptions {
  /** Server-side update of the embedding tables. */
  optimizer?: OptimizerName;
  hyper?: Record<string, number>;
  consistency?: ConsistencyName;
  staleness?: number;
  /** Embedding initialiser: U(-initScale, initScale). */
  initScale?: number;
  /** Kernel directories searched before the repo's shaders/ (to swap kernels). */
  kernelDirs?: string[];
  /**
   * One embedding_bag and one segment_sum dispatch per table (2T dispatches) instead of the
   * all-tables kernels (2 dispatches): the per-table form, for kernels written per table.
   */
  perTableKernels?: boolean;
  /**
   * Splits of the batch for the weight and bias gradients (partial sums reduced by one split_sum
   * for all layers): an expression of B. Default DEFAULT_GRAD_SPLITS; 1 writes the gradients
   * directly (no partials, no split_sum).
   */
  gradSplits?: string | number;
}

/**
 * Batch splits of the weight-gradient reductions: enough workgroups for a big GPU at batch 2048
 * (8 splits: 4-56 output tiles per layer become 32-448 workgroups), at least 256 rows per split
 * so each one amortizes its prologue, at most 8 so the reduction reads 8 copies of the gradient.
 */
export const DEFAULT_GRAD_SPLITS = 'max(1, min(8, floor(B / 256)))';

export const DLRM_PRESETS: Record<'small' | 'gpu', DlrmConfig> = {
  small: { numDense: 13, numTables: 26, dim: 16, bottom: [13, 64, 16], top: [64, 1], rowsPerTable: 1000 },
  gpu: { numDense: 13, numTables: 26, dim: 64, bottom: [13, 512, 256, 64], top: [512, 256, 1], rowsPerTable: 100_000 },
};

/** Width of the interaction output: dim + F(F-1)/2 with F = numTables + 1. */
export function interactionWidth(c: DlrmConfig): number {
  const F = c.numTables + 1;
  return c.dim + (F * (F - 1)) / 2;
}

/** Layer shapes [in, out] of the bottom then the top MLP. */
export function dlrmLayers(c: DlrmConfig): { prefix: string; index: number; inDim: number; outDim: number; relu: boolean }[] {
  const layers: { prefix: string; index: number; inDim: number; outDim: number; relu: boolean }[] = [];
  for (let l = 0; l + 1 < c.bottom.length; l++) layers.push({ prefix: 'bottom', index: l, inDim: c.bottom[l], outDim: c.bottom[l + 1], relu: true });
  const topIn = [interactionWidth(c), ...c.top];
  for (let l = 0; l + 1 < topIn.length; l++) layers.push({ prefix: 'top', index: l, inDim: topIn[l], outDim: topIn[l + 1], relu: l + 2 < topIn.length });
  return layers;
}

export function validateDlrmConfig(c: DlrmConfig): void {
  if (c.bottom[0] !== c.numDense) throw new Error(`DLRM: bottom MLP input ${c.bottom[0]} must equal numDense ${c.numDense}`);
  if (c.bottom[c.bottom.length - 1] !== c.dim) throw new Error(`DLRM: bottom MLP output ${c.bottom[c.bottom.length - 1]} must equal dim ${c.dim}`);
  if (c.top[c.top.length - 1] !== 1) throw new Error('DLRM: the top MLP must end in 1 (the logit)');
  if (c.bottom.length < 2 || c.top.length < 1) throw new Error('DLRM: needs at least one bottom and one top layer');
}

export function dlrmSpec(c: DlrmConfig, o: DlrmOptions = {}): ModelSpec {
  validateDlrmConfig(c);
  const T = c.numTables;
  const tables: TableDecl[] = Array.from({ length: T }, (_, t) => ({
    name: `emb${t}`, dim: c.dim, rows: c.rowsPerTable, init: 'uniform', initScale: o.initScale ?? 0.05,
    optimizer: o.optimizer ?? 'sgd', hyper: o.hyper ?? { lr: 0.1 }, consistency: o.consistency ?? 'bsp',
    staleness: o.staleness ?? 0, pooling: 'sum',
  }));
  const layers = dlrmLayers(c);
  const dense: DenseParamDecl[] = [];
  for (const L of layers) {
    dense.push({ name: `${L.prefix}.${L.index}.weight`, shape: [L.outDim, L.inDim], init: { kind: 'uniform', scale: Math.sqrt(6 / (L.inDim + L.outDim)) } });
    dense.push({ name: `${L.prefix}.${L.index}.bias`, shape: [L.outDim], init: { kind: 'uniform', scale: Math.sqrt(1 / L.outDim) } });
  }
  const act = (L: { prefix: string; index: number }) => `${L.prefix}.h${L.index + 1}`;
  const inputOf = (L: { prefix: string; index: number }) => (L.index === 0 ? (L.prefix === 'bottom' ? 'dense_x' : 'inter') : `${L.prefix}.h${L.index}`);

  const buffers: BufferDecl[] = [
    { name: 'emb', shape: ['B', T * c.dim] },
    { name: 'inter', shape: ['B', interactionWidth(c)] },
    { name: 'lossvec', shape: ['B'] },
    { name: 'loss', shape: [1] },
    { name: 'd.emb', shape: ['B', T * c.dim] },
    { name: 'd.inter', shape: ['B', interactionWidth(c)] },
  ];
  for (const L of layers) {
    buffers.push({ name: act(L), shape: ['B', L.outDim] });
    buffers.push({ name: `d.${act(L)}`, shape: ['B', L.outDim] });
  }
  // d.bottom.h0 is never needed (no gradient w.r.t. the dense features).

  // Kernels per shape class: a one-output layer (the head) is a GEMV, not a 64x64-tiled GEMM.
  const linearFwd = (L: (typeof layers)[number]): KernelCall => {
    const bind = [inputOf(L), `${L.prefix}.${L.index}.weight`, `${L.prefix}.${L.index}.bias`, act(L)];
    const relu = L.relu ? 1 : 0;
    if (L.outDim === 1) return { kernel: 'linear_fwd_n1', params: { M: 'B', K: L.inDim, relu }, bind };
    // A narrow layer (N <= 64, e.g. bottom 256 -> 64) gets 32-row blocks: twice the workgroups.
    if (L.outDim <= 64) return { kernel: 'linear_fwd', params: { M: 'B', N: L.outDim, K: L.inDim, relu }, bind, constants: { RG: 1 }, workgroups: [Math.ceil(L.outDim / 64), 'ceil(B/32)'] };
    return { kernel: 'linear_fwd', params: { M: 'B', N: L.outDim, K: L.inDim, relu }, bind };
  };
  const bottomLayers = layers.filter((L) => L.prefix === 'bottom');
  const topLayers = layers.filter((L) => L.prefix === 'top');
  const z = act(bottomLayers[bottomLayers.length - 1]);
  const logits = act(topLayers[topLayers.length - 1]);
  const D = c.dim;
  const perTable = !!o.perTableKernels;

  const forward: KernelCall[] = [
    ...bottomLayers.map(linearFwd),
    ...(perTable
      ? tables.map((t, i): KernelCall => ({
        kernel: 'embedding_bag', params: { B: 'B', D, outStride: T * D, outOffset: i * D, mode: 0 },
        bind: [`${t.name}.rows`, `${t.name}.index`, `${t.name}.offsets`, 'emb'],
      }))
      : [{ kernel: 'embedding_bag_tables', params: { B: 'B', D, T, outStride: T * D, outOffset: 0, mode: 0 }, bind: ['tables.rows', 'tables.index', 'tables.offsets', 'tables.dir', 'emb'] }]),
    { kernel: 'interaction_fwd', params: { B: 'B', D, T }, bind: [z, 'emb', 'inter'] },
    ...topLayers.map(linearFwd),
  ];

  // Weight and bias gradients: partial sums per batch split (dense.gradSplits, split z at
  // z * denseStride), reduced for every layer at once by one split_sum at the end; with
  // gradSplits = 1 written directly into dense.grad. Offsets: the runner's offset_P variables.
  const splitsExpr = o.gradSplits ?? DEFAULT_GRAD_SPLITS;
  const direct = splitsExpr === 1 || splitsExpr === '1';
  const grads = direct ? 'dense.grad' : 'dense.gradSplits';
  const splitParams: Record<string, Expr> = direct ? {} : { splits: 'splits', splitStride: 'denseStride' };
  const linearBwd = (L: (typeof layers)[number], needInput: boolean): KernelCall[] => {
    const dy = `d.${act(L)}`, y = act(L), relu = L.relu ? 1 : 0;
    const w = `${L.prefix}.${L.index}.weight`, b = `${L.prefix}.${L.index}.bias`;
    const at = { wAt: denseOffsetName(w), bAt: denseOffsetName(b) };
    if (L.outDim === 1) {
      // dX, dW and db of the head in one dispatch (no dX for a first layer: bind an unused buffer).
      return [{
        kernel: 'linear_bwd_n1', params: { M: 'B', K: L.inDim, relu, input: needInput ? 1 : 0, ...at, ...splitParams },
        bind: [dy, inputOf(L), w, y, needInput ? `d.${inputOf(L)}` : 'lossvec', grads],
      }];
    }
    const calls: KernelCall[] = [
      { kernel: 'linear_bwd_weight', params: { M: 'B', N: L.outDim, K: L.inDim, relu, ...at, ...splitParams }, bind: [dy, inputOf(L), y, grads] },
    ];
    if (needInput) calls.push({ kernel: 'linear_bwd_input', params: { M: 'B', N: L.outDim, K: L.inDim, relu }, bind: [dy, w, y, `d.${inputOf(L)}`] });
    return calls;
  };

  const backward: KernelCall[] = [
    { kernel: 'bce_fwd_bwd', params: { B: 'B' }, bind: [logits, 'labels', 'lossvec', `d.${logits}`] },
    { kernel: 'sum_reduce', params: { n: 'B', scale: '1/B' }, bind: ['lossvec', 'loss'] },
    ...[...topLayers].reverse().flatMap((L) => linearBwd(L, true)),
    { kernel: 'interaction_bwd', params: { B: 'B', D, T }, bind: [z, 'emb', 'd.inter', `d.${z}`, 'd.emb'] },
    ...[...bottomLayers].reverse().flatMap((L) => linearBwd(L, L.index > 0)),
    ...(perTable
      ? tables.map((t, i): KernelCall => ({
        kernel: 'segment_sum', params: { U: `U_${t.name}`, D, outStride: T * D, outOffset: i * D, mode: 0, scale: 'gradScale' },
        bind: [`${t.name}.csrOffsets`, `${t.name}.csrItems`, `${t.name}.offsets`, 'd.emb', `${t.name}.grad`],
      }))
      : [{
        kernel: 'segment_sum_tables', params: { Umax: 'Umax', D, T, outStride: T * D, outOffset: 0, mode: 0, scale: 'gradScale' },
        bind: ['tables.csrOffsets', 'tables.csrItems', 'tables.offsets', 'tables.dir', 'd.emb', 'tables.grad'],
      }]),
    ...(direct ? [] : [{ kernel: 'split_sum', params: { n: 'denseStride', S: 'splits', stride: 'denseStride', scale: 'gradScale' }, bind: ['dense.gradSplits', 'dense.grad'] }]),
  ];

  return {
    name: 'dlrm',
    config: { numDense: c.numDense, numTables: T, dim: c.dim },
    kernelDirs: [...(o.kernelDirs ?? []), REPO_SHADERS],
    tables,
    dense,
    inputs: [{ name: 'dense_x', shape: ['B', c.numDense] }, { name: 'labels', shape: ['B'] }],
    buffers,
    forward,
    backward,
    loss: 'loss',
    output: logits,
    ...(direct ? {} : { gradSplits: splitsExpr }),
    // The step's gradient scale: segment_sum's and split_sum's final writes (no JS pass over the
    // rows); with gradSplits = 1 nothing reduces dense.grad at the end, so the runner scales it.
    scalesGrads: { rows: true, dense: !direct },
  };
}
