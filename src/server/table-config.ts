// What a table is (TableConfig) and what goes in and out of one (TableRows, ImportRows), with
// their checks: a table config checked before the store is built, imported rows checked before
// any row changes (table-store.ts).
import { checkInitSpec, type InitKind } from './initializers.ts';
import { getOptimizer, resolveHyper, type Optimizer } from './optimizers.ts';
import { KEY_LIMIT_HI, keyWords } from '../keys/keys.ts';

export interface TableConfig {
  id: number;
  name: string;
  dim: number;
  init: InitKind;
  initScale: number;
  seed: bigint;
  optimizer: string;
  hyper: Record<string, number>;
  /** Rows to preallocate for (slabs and index), so a table of known size has no growth slack. */
  expectedRows?: number;
  /** Run the JS update per row even where a SIMD kernel exists (the same results; benchmarks compare the two). */
  scalarUpdates?: boolean;
}

/** Rows of a table, sorted by key when they come from exportRows. */
export interface TableRows {
  keys: BigUint64Array;
  /** keys.length x dim, row-major. */
  values: Float32Array;
  /** One keys.length x dim array per optimizer slot, in the optimizer's slotNames order. */
  slots: Float32Array[];
  /** Per-row update counts. */
  steps: Uint32Array;
}

/**
 * Rows to import. Slots may be given by position (slotNames order) or by name; a slot that is
 * missing starts at the optimizer's initial value, and names the optimizer does not have are
 * ignored (e.g. Adam state loaded into an SGD table). Missing steps start at 0.
 */
export interface ImportRows {
  keys: BigUint64Array;
  values: Float32Array;
  slots?: (Float32Array | undefined)[] | Record<string, Float32Array>;
  steps?: Uint32Array;
  /** If given, must equal the table's dim (checked for a clearer error than a length mismatch). */
  dim?: number;
}

export const MAX_DIM = 1 << 16;

/** The table config's problem as a sentence, or null. Checks everything the constructor would. */
export function checkTableConfig(cfg: TableConfig): string | null {
  const where = `table ${cfg.id} (${cfg.name})`;
  if (!Number.isInteger(cfg.dim) || cfg.dim < 1 || cfg.dim > MAX_DIM) return `${where}: dim ${cfg.dim} is not an integer in [1, ${MAX_DIM}]`;
  if (typeof cfg.name !== 'string' || cfg.name.length === 0) return `table ${cfg.id}: name must be a non-empty string`;
  if (cfg.name === 'dense' || cfg.name.startsWith('dense.')) return `${where}: the name 'dense' is reserved for dense parameters in checkpoints`;
  const init = checkInitSpec({ init: cfg.init, scale: cfg.initScale, seed: cfg.seed });
  if (init) return `${where}: ${init}`;
  if (cfg.expectedRows !== undefined && !(Number.isSafeInteger(cfg.expectedRows) && cfg.expectedRows >= 0)) {
    return `${where}: expectedRows ${cfg.expectedRows} is not a non-negative integer`;
  }
  try {
    resolveHyper(getOptimizer(cfg.optimizer), cfg.hyper);
  } catch (e) {
    return `${where}: ${(e as Error).message}`;
  }
  return null;
}

/** Import slots by position, whether they came by position or by name. */
export function slotSources(opt: Optimizer, slots: ImportRows['slots']): (Float32Array | undefined)[] {
  if (!slots) return [];
  if (Array.isArray(slots)) return slots;
  return opt.slotNames.map((name) => (Object.hasOwn(slots, name) ? slots[name] : undefined));
}

/** Why rows cannot be imported into a table of `d` and `opt`, or null. Checks everything before any row changes. */
export function checkImport(data: ImportRows, d: number, opt: Optimizer): string | null {
  if (!(data.keys instanceof BigUint64Array)) return 'keys must be a BigUint64Array';
  if (!(data.values instanceof Float32Array)) return 'values must be a Float32Array';
  const n = data.keys.length;
  if (data.dim !== undefined && data.dim !== d) return `rows have dim ${data.dim}, the table has dim ${d}`;
  if (data.values.length !== n * d) return `values length ${data.values.length} does not match ${n} keys x dim ${d}`;
  const w = keyWords(data.keys);
  for (let i = 0; i < n; i++) if (w[2 * i + 1]! >= KEY_LIMIT_HI) return `key ${data.keys[i]} at position ${i} is not below 2^48`;
  if (Array.isArray(data.slots) && data.slots.length > opt.slotCount) {
    return `${data.slots.length} slot arrays given, optimizer ${opt.name} has ${opt.slotCount}`;
  }
  const src = slotSources(opt, data.slots);
  for (let k = 0; k < src.length; k++) {
    const s = src[k];
    if (s === undefined) continue;
    if (!(s instanceof Float32Array) || s.length !== n * d) return `slot ${opt.slotNames[k]} must be a Float32Array of ${n} x ${d}`;
  }
  if (data.steps !== undefined && (!(data.steps instanceof Uint32Array) || data.steps.length !== n)) return `steps must be a Uint32Array of length ${n}`;
  return null;
}
