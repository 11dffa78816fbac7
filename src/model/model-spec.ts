// A model as data: its sparse tables, its dense parameters, its named GPU buffers (shapes as
// expressions of the batch size B, the config numbers and the per-step unique-row counts) and its
// forward and backward passes as ordered lists of kernel invocations. ModelRunner executes it;
// nothing in src/ needs to change to swap a kernel or to add a model.
//
// Names a kernel invocation can bind, besides the buffers the model declares:
//   per table T:  T.rows [U_T, dim] (pulled unique rows, uploaded), T.index [NNZ_T] u32
//                 (occurrence -> unique slot), T.offsets [B+1] u32 (bag offsets per sample),
//                 T.csrOffsets [U_T+1] u32, T.csrItems [NNZ_T] u32 (sample of each occurrence,
//                 grouped by unique row), T.grad [U_T, dim] (one gradient per unique row: read back)
//   all tables at once (kernels that take a table directory, e.g. embedding_bag_tables):
//                 tables.rows, tables.index, tables.offsets, tables.csrOffsets, tables.csrItems,
//                 tables.grad (each table's data at the offsets in tables.dir: 8 u32 per table)
//   per dense parameter P: P (its values) and P.grad (its gradient: read back)
//   the whole (padded) dense vector: dense, dense.grad and, when the spec sets gradSplits,
//                 dense.gradSplits ([splits, denseStride]: per-split partial gradients)
// Expression scope: B, every config number, U_T and NNZ_T for every table T, Utotal and NNZtotal
// (sums over the tables), Umax (the largest U_T), splits, denseStride (floats of the padded dense vector),
// gradScale (the step's gradient scale: see ModelSpec.scalesGrads) and, per dense
// parameter P, offset_P (its float offset in it; non-word characters of P become _).
import { mulberry32 } from '../util/hash.ts';
import { evalFormula } from '../gpu/kernel-meta.ts';

/** A number, or a formula such as 'B', 'B*numTables*dim', 'ceil(B/64)', '1/B'. */
export type Expr = number | string;

export type Initializer = 'zeros' | 'uniform' | 'normal';
export type { ConsistencyName, OptimizerName } from '../wire/vocabulary.ts';
import type { ConsistencyName, OptimizerName } from '../wire/vocabulary.ts';

export interface TableDecl {
  /** An identifier (it names buffers T.rows, ... and scope variables U_T, NNZ_T). */
  name: string;
  dim: number;
  /** Number of distinct row ids (ids are 0..rows-1). */
  rows: number;
  init: Initializer;
  initScale: number;
  /** Server-side update function and its hyper-parameters. */
  optimizer: OptimizerName;
  hyper: Record<string, number>;
  consistency: ConsistencyName;
  staleness?: number;
  /** Pooling of a multi-hot bag: sum (default) or mean. */
  pooling?: 'sum' | 'mean';
}

export interface DenseInit {
  kind: Initializer;
  /** uniform: U(-scale, scale); normal: N(0, scale^2). */
  scale?: number;
}

export interface DenseParamDecl {
  name: string;
  shape: Expr[];
  init: DenseInit;
}

export interface BufferDecl {
  name: string;
  shape: Expr[];
  type?: 'f32' | 'u32';
}

export interface KernelCall {
  kernel: string;
  /** The kernel's @param values (missing ones take the header defaults). */
  params: Record<string, Expr>;
  /** One buffer name per storage binding of the kernel, in binding order. */
  bind: string[];
  /** Explicit workgroup counts instead of the kernel header's formula. */
  workgroups?: Expr[];
  /** Pipeline override constants (WGSL `override`), e.g. a tile variant: { RG: 1 }. */
  constants?: Record<string, number>;
}

export interface InputDecl {
  name: string;
  shape: Expr[];
}

export interface ModelSpec {
  name: string;
  /** Numbers the expressions may use (besides B, U_T, NNZ_T). */
  config: Record<string, number>;
  /** WGSL search path: earlier directories win (a model's own shaders/ first, then the repo's). */
  kernelDirs: string[];
  tables: TableDecl[];
  dense: DenseParamDecl[];
  /** Per-step f32 inputs the caller uploads (dense features, labels, ...). */
  inputs: InputDecl[];
  /** Activations and their gradients. */
  buffers: BufferDecl[];
  forward: KernelCall[];
  /** The loss kernels and the backward pass, run after forward in the same encoder. */
  backward: KernelCall[];
  /** Buffer holding the scalar loss (mean over the batch) after the step. */
  loss: string;
  /** Buffer holding one score (logit) per sample after forward: what evaluation reads. */
  output?: string;
  /**
   * Partial sums of the dense gradient, for kernels that split a reduction over the batch
   * (linear_bwd_weight with splits > 1): the number of splits (scope `splits`, e.g.
   * 'max(1, min(8, floor(B/256)))'). The runner then keeps dense.gradSplits, [splits, denseStride]
   * floats, zero outside the parameters; a kernel writes parameter P's partial of split z at
   * z * denseStride + offset_P, and one split_sum over dense.gradSplits into dense.grad reduces
   * every parameter at once.
   */
  gradSplits?: Expr;
  /**
   * Which read-back gradients the spec's kernels multiply by the scope variable `gradScale` (the
   * step's RunnerStepOptions.gradScale, e.g. a worker's local batch over the global batch) as
   * they write them: `rows`, the kernels that write T.grad / tables.grad (segment_sum's `scale`);
   * `dense`, the last write of dense.grad (split_sum's `scale`). What a spec does not scale, the
   * runner scales itself: the dense gradient in its unpadding copy (and through the fused
   * optimizer's gradScale), the rows with a JS pass over the mapped readback (3.4 ms at best per
   * step at the gpu preset, batch 2048, 10-15 ms on a loaded machine: what a spec saves by
   * scaling on the GPU; bench/RESULTS.md, 2026-12-02).
   */
  scalesGrads?: { rows?: boolean; dense?: boolean };
}

/** Evaluates an expression; the message names the context on failure. */
export function evalExpr(e: Expr, scope: Record<string, number>, what = 'expression'): number {
  if (typeof e === 'number') return e;
  try {
    return evalFormula(e, scope);
  } catch (err) {
    throw new Error(`${what}: ${(err as Error).message}`);
  }
}

export function shapeSize(shape: Expr[], scope: Record<string, number>, what = 'shape'): number {
  let n = 1;
  for (const e of shape) {
    const v = evalExpr(e, scope, what);
    if (!Number.isInteger(v) || v < 0) throw new Error(`${what}: dimension ${String(e)} = ${v} is not a non-negative integer`);
    n *= v;
  }
  return n;
}

/** Size in floats of every dense parameter (batch-independent). */
export function denseSizes(spec: ModelSpec): { name: string; offset: number; size: number }[] {
  const out: { name: string; offset: number; size: number }[] = [];
  let offset = 0;
  for (const p of spec.dense) {
    const size = shapeSize(p.shape, spec.config, `dense parameter ${p.name}`);
    out.push({ name: p.name, offset, size });
    offset += size;
  }
  return out;
}

/** Every dense parameter's shape as numbers (its expressions evaluated over the config): tensor shapes in checkpoints. */
export function denseShapes(spec: ModelSpec): number[][] {
  return spec.dense.map((p) => p.shape.map((e) => evalExpr(e, spec.config, `dense parameter ${p.name}`)));
}

/** The spec's initial dense vector (flat, unpadded), deterministic in `seed`. */
export function initDense(spec: ModelSpec, seed = 1): Float32Array {
  const sizes = denseSizes(spec);
  const out = new Float32Array(sizes.reduce((s, p) => s + p.size, 0));
  const r = mulberry32(seed);
  spec.dense.forEach((p, i) => {
    const { offset, size } = sizes[i];
    const scale = p.init.scale ?? 0;
    for (let j = 0; j < size; j++) {
      if (p.init.kind === 'zeros') out[offset + j] = 0;
      else if (p.init.kind === 'uniform') out[offset + j] = (2 * r() - 1) * scale;
      else out[offset + j] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()) * scale;
    }
  });
  return out;
}

/** Total floats of the flat dense vector (parameters in declaration order, no padding). */
export function denseLength(spec: ModelSpec): number {
  return denseSizes(spec).reduce((s, p) => s + p.size, 0);
}

/** The expression scope of one step (the runner adds splits and denseStride). */
export function stepScope(spec: ModelSpec, B: number, counts: { unique: number; nnz: number }[]): Record<string, number> {
  const s: Record<string, number> = { ...spec.config, B, Utotal: 0, NNZtotal: 0, Umax: 0 };
  spec.tables.forEach((t, i) => {
    s[`U_${t.name}`] = counts[i]?.unique ?? 0;
    s[`NNZ_${t.name}`] = counts[i]?.nnz ?? 0;
    s.Utotal += counts[i]?.unique ?? 0;
    s.Umax = Math.max(s.Umax, counts[i]?.unique ?? 0);
    s.NNZtotal += counts[i]?.nnz ?? 0;
  });
  return s;
}

const IDENT = /^[A-Za-z_]\w*$/;

/** Names every binding can refer to; used by validateSpec and the runner. */
export function tableBufferNames(t: TableDecl): string[] {
  return ['rows', 'index', 'offsets', 'csrOffsets', 'csrItems', 'grad'].map((s) => `${t.name}.${s}`);
}

/** The scope variable holding dense parameter `name`'s float offset in the padded dense vector. */
export function denseOffsetName(name: string): string {
  return `offset_${name.replace(/\W/g, '_')}`;
}

/** Names of the all-tables and whole-dense-vector buffers the runner provides. */
export const RUNNER_BUFFER_NAMES = [
  'tables.rows', 'tables.index', 'tables.offsets', 'tables.csrOffsets', 'tables.csrItems', 'tables.dir', 'tables.grad',
  'dense', 'dense.grad', 'dense.gradSplits',
] as const;

/** Static checks: unique names, bindings that exist. Kernel-side checks happen in the runner. */
export function validateSpec(spec: ModelSpec): void {
  const names = new Set<string>();
  const add = (n: string, what: string) => {
    if (names.has(n)) throw new Error(`model ${spec.name}: ${what} "${n}" is declared twice`);
    names.add(n);
  };
  for (const t of spec.tables) {
    if (!IDENT.test(t.name)) throw new Error(`model ${spec.name}: table name "${t.name}" must be an identifier`);
    if (!(t.dim > 0) || !Number.isInteger(t.dim)) throw new Error(`model ${spec.name}: table ${t.name} dim ${t.dim}`);
    for (const n of tableBufferNames(t)) add(n, 'table buffer');
  }
  for (const n of RUNNER_BUFFER_NAMES) add(n, 'runner buffer');
  for (const p of spec.dense) {
    add(p.name, 'dense parameter');
    add(`${p.name}.grad`, 'dense gradient');
    add(denseOffsetName(p.name), 'dense offset variable');
  }
  for (const i of spec.inputs) add(i.name, 'input');
  for (const b of spec.buffers) add(b.name, 'buffer');
  for (const [phase, calls] of [['forward', spec.forward], ['backward', spec.backward]] as const) {
    calls.forEach((c, i) => {
      for (const b of c.bind) {
        if (!names.has(b)) throw new Error(`model ${spec.name}: ${phase}[${i}] (${c.kernel}) binds unknown buffer "${b}"`);
      }
    });
  }
  if (!names.has(spec.loss)) throw new Error(`model ${spec.name}: loss buffer "${spec.loss}" is not declared`);
}
