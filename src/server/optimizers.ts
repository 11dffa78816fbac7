// Update functions over one row, and the registry the server resolves a table's optimizer from.
// An update function reads the gradient and rewrites the row and its slot rows in place; it runs
// for every pushed row, so it must not allocate. The built-in SGD, AdaGrad and Adam compute in
// float32, each operation rounded (Math.fround) in the order of their WebAssembly SIMD kernels
// (optimizer-kernels.ts), which the servers run: the two agree bit for bit, so a worker's local
// update (worker/row-cache.ts) equals the server's. FTRL and custom updates compute in float64
// (JS numbers) with the row, gradient and slots stored as float32 (docs/store.md).
import { resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BUILTIN_OPTIMIZERS, type OptimizerName } from '../wire/vocabulary.ts';

/**
 * Updates w[wOff .. wOff+dim) from g[gOff .. gOff+dim). `slots[k]` is the k-th slot slab and the
 * row's slot values sit at slots[k][slotOff .. slotOff+dim). `step` is the row's update count
 * after this update (1 on the row's first update). `hyper` is the table's hyperparameters with
 * the optimizer's defaults filled in.
 */
export type UpdateFn = (
  w: Float32Array, wOff: number, g: Float32Array, gOff: number, dim: number,
  slots: Float32Array[], slotOff: number, step: number, hyper: Record<string, number>,
) => void;

/** What a built-in or a user module defines. */
export interface OptimizerDef {
  name: string;
  /** Number of slot rows (same width as the row) kept per row. */
  slotCount: number;
  /** Every hyperparameter the optimizer reads, with its default. Other names are refused. */
  defaults: Record<string, number>;
  update: UpdateFn;
  /** Slot names used in checkpoints (`<table>.slot.<name>`); default slot0, slot1, ... */
  slotNames?: string[];
  /** Value each slot starts at for a new row (per slot); default all 0. */
  initialSlotValues?: (hyper: Record<string, number>) => number[];
  /** A problem with resolved hyperparameters as a sentence, or null. */
  checkHyper?: (hyper: Record<string, number>) => string | null;
}

/** A registered optimizer: every optional part filled in. */
export interface Optimizer extends Required<OptimizerDef> {
  builtin: boolean;
}

const registry = new Map<string, Optimizer>();
const SLOT_NAME = /^[A-Za-z0-9_]+$/;
const OPT_NAME = /^[A-Za-z0-9_\-]+$/;
const MAX_SLOTS = 16;

const nonNegative = (h: Record<string, number>, ...names: string[]): string | null => {
  for (const n of names) if (!(h[n]! >= 0)) return `${n} must be >= 0, got ${h[n]}`;
  return null;
};

// ---- built-ins ----

const f = Math.fround;

/** w -= lr * (g + weight_decay * w). A negative lr adds the gradient (tests count with lr = -1). */
const sgd: OptimizerDef = {
  name: 'sgd',
  slotCount: 0,
  defaults: { lr: 0.01, weight_decay: 0 },
  update(w, wOff, g, gOff, dim, _slots, _slotOff, _step, hyper) {
    const lr = f(hyper.lr!), wd = f(hyper.weight_decay!);
    // The store into w rounds the last subtraction.
    if (wd === 0) {
      for (let j = 0; j < dim; j++) w[wOff + j] -= f(lr * g[gOff + j]!);
    } else {
      for (let j = 0; j < dim; j++) w[wOff + j] -= f(lr * f(g[gOff + j]! + f(wd * w[wOff + j]!)));
    }
  },
};

/** acc += g^2; w -= lr * g / (sqrt(acc) + eps)   (Duchi et al. 2011, PyTorch's form). */
const adagrad: OptimizerDef = {
  name: 'adagrad',
  slotCount: 1,
  slotNames: ['accumulator'],
  defaults: { lr: 0.01, eps: 1e-10, initial_accumulator: 0 },
  initialSlotValues: (h) => [h.initial_accumulator!],
  checkHyper: (h) => nonNegative(h, 'eps', 'initial_accumulator'),
  update(w, wOff, g, gOff, dim, slots, slotOff, _step, hyper) {
    const lr = f(hyper.lr!), eps = f(hyper.eps!);
    const acc = slots[0]!;
    for (let j = 0; j < dim; j++) {
      const gj = g[gOff + j]!;
      const a = f(acc[slotOff + j]! + f(gj * gj));
      acc[slotOff + j] = a;
      w[wOff + j] -= f(f(lr * gj) / f(f(Math.sqrt(a)) + eps));
    }
  },
};

/**
 * Adam (Kingma & Ba 2015) with the row's own update count as t for bias correction, as sparse
 * Adam does: a row touched for the first time gets a full bias-corrected step.
 */
const adam: OptimizerDef = {
  name: 'adam',
  slotCount: 2,
  slotNames: ['m', 'v'],
  defaults: { lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
  checkHyper: (h) => {
    for (const b of ['beta1', 'beta2']) if (!(h[b]! >= 0 && h[b]! < 1)) return `${b} must be in [0, 1), got ${h[b]}`;
    return nonNegative(h, 'eps');
  },
  update(w, wOff, g, gOff, dim, slots, slotOff, step, hyper) {
    const lr = f(hyper.lr!), b1 = f(hyper.beta1!), b2 = f(hyper.beta2!), eps = f(hyper.eps!);
    const ob1 = f(1 - hyper.beta1!), ob2 = f(1 - hyper.beta2!);
    const m = slots[0]!, v = slots[1]!;
    const bc1 = f(1 - Math.pow(hyper.beta1!, step)), bc2 = f(1 - Math.pow(hyper.beta2!, step));
    for (let j = 0; j < dim; j++) {
      const gj = g[gOff + j]!;
      const mj = f(f(b1 * m[slotOff + j]!) + f(ob1 * gj));
      const vj = f(f(b2 * v[slotOff + j]!) + f(f(ob2 * gj) * gj));
      m[slotOff + j] = mj;
      v[slotOff + j] = vj;
      w[wOff + j] -= f(f(lr * f(mj / bc1)) / f(f(Math.sqrt(f(vj / bc2))) + eps));
    }
  },
};

/**
 * FTRL-Proximal (McMahan et al. 2013, Algorithm 1), per coordinate:
 *   sigma = (sqrt(n + g^2) - sqrt(n)) / alpha;  z += g - sigma * w;  n += g^2
 *   w = 0 if |z| <= l1, else -(z - sign(z) * l1) / ((beta + sqrt(n)) / alpha + l2)
 * The row's initial values act as w before the first update; afterwards w is a function of z, n.
 */
const ftrl: OptimizerDef = {
  name: 'ftrl',
  slotCount: 2,
  slotNames: ['z', 'n'],
  defaults: { alpha: 0.05, beta: 1, l1: 0, l2: 0 },
  checkHyper: (h) => (h.alpha! > 0 ? nonNegative(h, 'beta', 'l1', 'l2') : `alpha must be > 0, got ${h.alpha}`),
  update(w, wOff, g, gOff, dim, slots, slotOff, _step, hyper) {
    const alpha = hyper.alpha!, beta = hyper.beta!, l1 = hyper.l1!, l2 = hyper.l2!;
    const z = slots[0]!, n = slots[1]!;
    for (let j = 0; j < dim; j++) {
      const gj = g[gOff + j]!;
      const nOld = n[slotOff + j]!;
      const nNew = Math.fround(nOld + gj * gj);
      const sigma = (Math.sqrt(nNew) - Math.sqrt(nOld)) / alpha;
      const zNew = Math.fround(z[slotOff + j]! + gj - sigma * w[wOff + j]!);
      z[slotOff + j] = zNew;
      n[slotOff + j] = nNew;
      w[wOff + j] = Math.abs(zNew) <= l1 ? 0 : -(zNew - Math.sign(zNew) * l1) / ((beta + Math.sqrt(nNew)) / alpha + l2);
    }
  },
};

// ---- registry ----

/** Checks a definition's shape and returns it with every optional part filled in. */
export function validateOptimizer(def: unknown, origin = 'optimizer definition'): Optimizer {
  const fail = (why: string): never => { throw new TypeError(`${origin}: ${why}`); };
  if (typeof def !== 'object' || def === null) fail(`expected an object { name, slotCount, defaults, update }, got ${def === null ? 'null' : typeof def}`);
  const d = def as Record<string, unknown>;
  if (typeof d.name !== 'string' || !OPT_NAME.test(d.name)) fail(`name must be a non-empty string of letters, digits, _ or -, got ${JSON.stringify(d.name)}`);
  const name = d.name as string;
  if (!Number.isInteger(d.slotCount) || (d.slotCount as number) < 0 || (d.slotCount as number) > MAX_SLOTS) {
    fail(`optimizer '${name}': slotCount must be an integer in [0, ${MAX_SLOTS}], got ${String(d.slotCount)}`);
  }
  const slotCount = d.slotCount as number;
  if (typeof d.defaults !== 'object' || d.defaults === null || Array.isArray(d.defaults)) fail(`optimizer '${name}': defaults must be an object of numbers`);
  const defaults: Record<string, number> = {};
  for (const [k, v] of Object.entries(d.defaults as object)) {
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`optimizer '${name}': default ${k} must be a finite number, got ${String(v)}`);
    defaults[k] = v as number;
  }
  if (typeof d.update !== 'function') fail(`optimizer '${name}': update must be a function (w, wOff, g, gOff, dim, slots, slotOff, step, hyper) => void, got ${typeof d.update}`);
  let slotNames = Array.from({ length: slotCount }, (_, i) => `slot${i}`);
  if (d.slotNames !== undefined) {
    const s = d.slotNames;
    if (!Array.isArray(s) || s.length !== slotCount || !s.every((x) => typeof x === 'string' && SLOT_NAME.test(x)) || new Set(s).size !== s.length) {
      fail(`optimizer '${name}': slotNames must be ${slotCount} distinct names of letters, digits or _, got ${JSON.stringify(s)}`);
    }
    slotNames = [...(s as string[])];
  }
  for (const key of ['initialSlotValues', 'checkHyper'] as const) {
    if (d[key] !== undefined && typeof d[key] !== 'function') fail(`optimizer '${name}': ${key} must be a function if given`);
  }
  const initial = (d.initialSlotValues as OptimizerDef['initialSlotValues']) ?? (() => new Array<number>(slotCount).fill(0));
  const opt: Optimizer = {
    name, slotCount, defaults, update: d.update as UpdateFn, slotNames,
    initialSlotValues: (h) => {
      const v = initial(h);
      if (!Array.isArray(v) || v.length !== slotCount || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
        throw new TypeError(`optimizer '${name}': initialSlotValues must return ${slotCount} finite numbers, got ${JSON.stringify(v)}`);
      }
      return v;
    },
    checkHyper: (d.checkHyper as OptimizerDef['checkHyper']) ?? (() => null),
    builtin: false,
  };
  smokeTest(opt, origin);
  return opt;
}

/** Runs the update once on a small zero row with the defaults, so a broken module fails at load. */
function smokeTest(opt: Optimizer, origin: string): void {
  const dim = 4;
  const w = new Float32Array(dim), g = new Float32Array(dim).fill(0.5);
  try {
    const hyper = { ...opt.defaults };
    const init = opt.initialSlotValues(hyper);
    const slots = init.map((v) => new Float32Array(dim).fill(v));
    opt.update(w, 0, g, 0, dim, slots, 0, 1, hyper);
  } catch (e) {
    throw new TypeError(`${origin}: optimizer '${opt.name}' update failed on a test row: ${(e as Error).message}`);
  }
}

function add(def: OptimizerDef, builtin: boolean): Optimizer {
  const opt = validateOptimizer(def, builtin ? 'built-in optimizer' : 'registerOptimizer');
  opt.builtin = builtin;
  registry.set(opt.name, opt);
  return opt;
}

const BUILTINS: Record<OptimizerName, OptimizerDef> = { sgd, adagrad, adam, ftrl };
for (const name of BUILTIN_OPTIMIZERS) add(BUILTINS[name], true);

/**
 * Registers a custom optimizer. Registering the same definition object again is a no-op (a module
 * imported twice); a different definition under a taken name is refused.
 */
export function registerOptimizer(def: OptimizerDef): Optimizer {
  const name = (def as { name?: unknown } | null)?.name;
  const have = typeof name === 'string' ? registry.get(name) : undefined;
  if (have) {
    if (have.builtin) throw new Error(`optimizer '${name}' is built in and cannot be replaced; choose another name`);
    if (have.update === def.update) return have;
    throw new Error(`optimizer '${name}' is already registered with a different definition`);
  }
  return add(def, false);
}

/** The optimizer registered under `name`; throws naming the known ones. */
export function getOptimizer(name: string): Optimizer {
  const o = registry.get(name);
  if (!o) throw new Error(`unknown optimizer '${name}' (known: ${optimizerNames().join(', ')}; custom ones load with --optimizer-module)`);
  return o;
}

export function optimizerNames(): string[] {
  return [...registry.keys()].sort();
}

/**
 * A table's hyperparameters with the optimizer's defaults filled in. Unknown names and
 * non-finite values are refused (a typo such as `learning_rate` would otherwise be silently
 * ignored), as is anything the optimizer's own checkHyper refuses.
 */
export function resolveHyper(opt: Optimizer, hyper: Record<string, number> = {}): Record<string, number> {
  const out: Record<string, number> = { ...opt.defaults };
  for (const [k, v] of Object.entries(hyper)) {
    if (!(k in opt.defaults)) {
      throw new Error(`optimizer '${opt.name}' has no hyperparameter '${k}' (known: ${Object.keys(opt.defaults).join(', ') || 'none'})`);
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`optimizer '${opt.name}': ${k} must be a finite number, got ${String(v)}`);
    out[k] = v;
  }
  const bad = opt.checkHyper(out);
  if (bad) throw new Error(`optimizer '${opt.name}': ${bad}`);
  return out;
}

/**
 * Imports a user module (ESM .js/.mjs, or .ts/.mts when running under tsx) whose default export
 * or named export `optimizer` is an OptimizerDef, validates it and registers it.
 */
export async function loadOptimizerModule(path: string): Promise<Optimizer> {
  const url = pathToFileURL(resolvePath(path)).href;
  let mod: Record<string, unknown>;
  try {
    mod = await import(url) as Record<string, unknown>;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const hint = /\.[mc]?ts$/.test(path) && err.code === 'ERR_UNKNOWN_FILE_EXTENSION'
      ? ' (TypeScript modules need the tsx loader: node --import tsx)' : '';
    throw new Error(`cannot import optimizer module ${path}: ${err.message}${hint}`);
  }
  let def: unknown = mod.default ?? mod.optimizer;
  // A CommonJS-compiled module arrives as { default: { default: def } }.
  if (def && typeof def === 'object' && !('update' in def)) {
    const inner = (def as Record<string, unknown>).default ?? (def as Record<string, unknown>).optimizer;
    if (inner !== undefined) def = inner;
  }
  if (def === undefined) {
    throw new Error(`optimizer module ${path} has neither a default export nor an export named 'optimizer' (exports: ${Object.keys(mod).join(', ') || 'none'})`);
  }
  validateOptimizer(def, `optimizer module ${path}`);
  return registerOptimizer(def as OptimizerDef);
}
