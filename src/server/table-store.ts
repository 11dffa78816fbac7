// One table shard on a server: a KeyIndex (row id -> slot) plus rows in Float32Array blocks of
// BLOCK_ROWS rows (row s in block s >> BLOCK_SHIFT at (s & BLOCK_MASK) * dim), blocks of the same
// shape per optimizer slot and Uint32Array blocks of per-row update counts. No object or Map entry
// per row, so memory per row stays near dim * 4 * (1 + slots) bytes plus the index and the growth
// slack (see docs/store.md).
// Keys are handled as (lo, hi) u32 words through a Uint32Array view of the BigUint64Array, so
// hot paths do no BigInt arithmetic.
import { KeyIndex } from '../keys/key-index.ts';
import { checkInitSpec, makeRowInitializer, type InitKind, type RowInitializer } from './initializers.ts';
import { getOptimizer, resolveHyper, type Optimizer, type UpdateFn } from './optimizers.ts';
import { KEY_LIMIT_HI, keyWords } from '../keys/keys.ts';

export { checkPush } from './request-checks.ts';

/**
 * Rows handled per touch block. Random rows of a large table miss every cache level; a loop that
 * only loads one word per cache line of each row in a block has independent loads that the CPU
 * overlaps, and the loop that then copies or updates those rows finds them in cache. Measured on
 * 4096 random rows of a 1M x 64 table: pull 1.7 -> 1.15 ms, SGD apply 2.1 -> 1.55 ms (docs/store.md).
 */
const TOUCH_BLOCK = 64;
/**
 * Rows per storage block. A table grows by adding a block, never by copying what it holds: with
 * one slab per table, 26 AdaGrad tables filled in step regrew together, and one request's copies
 * held a server's event loop for up to 14.5 s at 250k rows per table (the scheduler declared the
 * servers of `bench step --scale-rows 1000000` dead: no heartbeat for 10 s). The same fill of
 * 26 x 150k rows in 4096-row pulls, one run (load 9-13): 38.1 -> 19.2 s, longest pull 6.5 -> 2.0 s.
 * 2^15 rows of dim 64 are 8 MiB a block: a table grown on demand has at most one block of slack.
 */
const BLOCK_SHIFT = 15;
const BLOCK_ROWS = 1 << BLOCK_SHIFT;
const BLOCK_MASK = BLOCK_ROWS - 1;
/** 64-byte cache lines hold 16 floats. */
const FLOATS_PER_LINE = 16;

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
const MIN_ROWS = 64;

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

export class TableStore {
  readonly config: Readonly<TableConfig>;
  readonly dim: number;
  readonly slotCount: number;
  readonly optimizer: Optimizer;
  /** Resolved hyperparameters (defaults filled in). */
  readonly hyper: Readonly<Record<string, number>>;
  private readonly index: KeyIndex;
  private readonly initRow: RowInitializer;
  private readonly update: UpdateFn;
  private readonly slotInit: number[];
  private capacity = 0;
  private count = 0;
  /** Row values, one array per block; the last block may be shorter than BLOCK_ROWS. */
  private readonly values: Float32Array[] = [];
  /** slots[b][k]: optimizer slot k of block b (the array update fns get for a row of block b). */
  private readonly slots: Float32Array[][] = [];
  private readonly steps: Uint32Array[] = [];
  private slotScratch = new Int32Array(0);
  /** Where touch loops leave their sum, so the compiler cannot drop their loads as unused. */
  private touchSink = 0;

  constructor(cfg: TableConfig) {
    const bad = checkTableConfig(cfg);
    if (bad) throw new Error(bad);
    this.config = Object.freeze({ ...cfg, hyper: { ...cfg.hyper } });
    this.dim = cfg.dim;
    this.optimizer = getOptimizer(cfg.optimizer);
    this.slotCount = this.optimizer.slotCount;
    this.hyper = Object.freeze(resolveHyper(this.optimizer, cfg.hyper));
    this.update = this.optimizer.update;
    this.slotInit = this.optimizer.initialSlotValues({ ...this.hyper });
    this.initRow = makeRowInitializer({ init: cfg.init, scale: cfg.initScale, seed: cfg.seed });
    const expected = cfg.expectedRows ?? 0;
    this.index = new KeyIndex(expected);
    // Full blocks for the expected rows and the rest in a last, shorter one: no slack.
    for (let left = Math.max(MIN_ROWS, expected); left > 0; left -= BLOCK_ROWS) this.addBlock(Math.min(BLOCK_ROWS, left));
  }

  get rows(): number { return this.count; }
  get name(): string { return this.config.name; }
  get slotNames(): readonly string[] { return this.optimizer.slotNames; }

  /**
   * The rows for `keys`, in the order asked, into `out` (keys.length * dim) or a new array.
   * Missing rows are created by the table's initializer. Keys are not validated here.
   */
  pull(keys: BigUint64Array, out?: Float32Array, state?: Float32Array): Float32Array {
    const n = keys.length, d = this.dim, k = this.slotCount;
    if (out === undefined) out = new Float32Array(n * d);
    else if (out.length !== n * d) throw new RangeError(`pull: out has length ${out.length}, need ${n} keys x dim ${d} = ${n * d}`);
    if (state && state.length !== n * this.stateWidth) throw new RangeError(`pull: state has length ${state.length}, need ${n} keys x ${this.stateWidth}`);
    // Index probes first, then the copies, each in touch blocks (see TOUCH_BLOCK); the slab is
    // read only after every missing row was created.
    const slots = this.slotsOf(keys);
    const v = this.values;
    for (let b = 0; b < n; b += TOUCH_BLOCK) {
      const e = Math.min(n, b + TOUCH_BLOCK);
      this.touchRows(slots, b, e, !!state);
      for (let i = b; i < e; i++) {
        const s = slots[i]!, blk = s >>> BLOCK_SHIFT, r = s & BLOCK_MASK, at = r * d;
        out.set(v[blk]!.subarray(at, at + d), i * d);
        if (!state) continue;
        for (let j = 0; j < k; j++) state.set(this.slots[blk]![j]!.subarray(at, at + d), (j * n + i) * d);
        state[k * n * d + i] = this.steps[blk]![r]!;
      }
    }
    return out;
  }

  /**
   * Floats of optimizer state per row that `pull(keys, out, state)` writes: each slot's row, then
   * the update count (a float: exact to 2^24 updates). Laid out slot by slot over all keys, then the counts.
   */
  get stateWidth(): number { return this.slotCount * this.dim + 1; }

  /**
   * Runs the update function once per (key, gradient row); rows are created on first touch.
   * The caller has validated the push (request-checks.ts: pushProblem); grads is keys.length * dim.
   */
  apply(keys: BigUint64Array, grads: Float32Array): void {
    const n = keys.length, d = this.dim;
    if (grads.length !== n * d) throw new RangeError(`apply: grads has length ${grads.length}, need ${n} keys x dim ${d} = ${n * d}`);
    const rows = this.slotsOf(keys); // probes first, as in pull
    const update = this.update, hyper = this.hyper as Record<string, number>, slots = this.slots, values = this.values;
    for (let b = 0; b < n; b += TOUCH_BLOCK) {
      const e = Math.min(n, b + TOUCH_BLOCK);
      this.touchRows(rows, b, e, true);
      for (let i = b; i < e; i++) {
        const s = rows[i]!, blk = s >>> BLOCK_SHIFT, r = s & BLOCK_MASK;
        const step = ++this.steps[blk]![r]!;
        update(values[blk]!, r * d, grads, i * d, d, slots[blk]!, r * d, step, hyper);
      }
    }
  }

  /** The slot of every key (rows created on first touch), in a scratch array valid until the next call. */
  private slotsOf(keys: BigUint64Array): Int32Array {
    const n = keys.length;
    if (this.slotScratch.length < n) this.slotScratch = new Int32Array(Math.max(n, this.slotScratch.length * 2));
    const out = this.slotScratch, w = keyWords(keys), index = this.index;
    let sink = 0;
    for (let b = 0; b < n; b += TOUCH_BLOCK) {
      const e = Math.min(n, b + TOUCH_BLOCK);
      for (let i = b; i < e; i++) sink += index.touch(w[2 * i]!, w[2 * i + 1]!);
      for (let i = b; i < e; i++) out[i] = this.slotOf(w[2 * i]!, w[2 * i + 1]!);
    }
    this.touchSink = sink;
    return out;
  }

  /**
   * Reads one word per cache line of rows slots[b..e) (and of their optimizer slots and step
   * counts with `all`), so that the loop that really uses them finds them in cache.
   */
  private touchRows(slots: Int32Array, b: number, e: number, all: boolean): void {
    const d = this.dim;
    let sink = 0;
    for (let i = b; i < e; i++) {
      const s = slots[i]!, blk = s >>> BLOCK_SHIFT, r = s & BLOCK_MASK, at = r * d;
      const v = this.values[blk]!;
      for (let j = 0; j < d; j += FLOATS_PER_LINE) sink += v[at + j]!;
      if (!all) continue;
      sink += this.steps[blk]![r]!;
      const sb = this.slots[blk]!;
      for (let k = 0; k < this.slotCount; k++) {
        const sl = sb[k]!;
        for (let j = 0; j < d; j += FLOATS_PER_LINE) sink += sl[at + j]!;
      }
    }
    this.touchSink = sink;
  }

  /** Copies of every row with its slots and step count, sorted by key (checkpoints, migration). */
  exportRows(): TableRows {
    const n = this.count, d = this.dim;
    const keys = new BigUint64Array(n);
    const kw = keyWords(keys);
    let i = 0;
    this.index.forEach((lo, hi) => { kw[2 * i] = lo; kw[2 * i + 1] = hi; i++; });
    keys.sort(); // native numeric sort of the u64 values
    const values = new Float32Array(n * d);
    const slots = Array.from({ length: this.slotCount }, () => new Float32Array(n * d));
    const steps = new Uint32Array(n);
    for (let r = 0; r < n; r++) {
      const s = this.index.lookup(kw[2 * r]!, kw[2 * r + 1]!);
      const blk = s >>> BLOCK_SHIFT, from = (s & BLOCK_MASK) * d, to = r * d;
      values.set(this.values[blk]!.subarray(from, from + d), to);
      for (let k = 0; k < slots.length; k++) slots[k]!.set(this.slots[blk]![k]!.subarray(from, from + d), to);
      steps[r] = this.steps[blk]![s & BLOCK_MASK]!;
    }
    return { keys, values, slots, steps };
  }

  /**
   * Inserts or replaces rows with their slots and steps; with `keep`, only rows for which it
   * returns true (a server restoring a checkpoint keeps the keys it owns). Everything is checked
   * before any row changes. Returns the number of rows written.
   */
  importRows(data: ImportRows, keep?: (lo: number, hi: number) => boolean): number {
    const bad = this.checkImport(data);
    if (bad) throw new Error(`importRows into table ${this.config.name}: ${bad}`);
    const d = this.dim, n = data.keys.length;
    const w = keyWords(data.keys);
    const src = this.slotSources(data.slots);
    let written = 0;
    for (let r = 0; r < n; r++) {
      const lo = w[2 * r]!, hi = w[2 * r + 1]!;
      if (keep && !keep(lo, hi)) continue;
      let s = this.index.lookup(lo, hi);
      if (s < 0) s = this.createRow(lo, hi, false);
      const blk = s >>> BLOCK_SHIFT, at = (s & BLOCK_MASK) * d;
      this.values[blk]!.set(data.values.subarray(r * d, r * d + d), at);
      for (let k = 0; k < this.slotCount; k++) {
        const from = src[k], to = this.slots[blk]![k]!;
        if (from) to.set(from.subarray(r * d, r * d + d), at);
        else to.fill(this.slotInit[k]!, at, at + d);
      }
      this.steps[blk]![s & BLOCK_MASK] = data.steps ? data.steps[r]! : 0;
      written++;
    }
    return written;
  }

  /** Bytes held (capacity, not just rows in use) divided by rows; the index and slack count. */
  bytesPerRow(): number {
    return this.count === 0 ? 0 : this.memoryBytes() / this.count;
  }

  /** dim * 4 * (1 + slotCount): the row and its slots, nothing else. */
  idealBytesPerRow(): number {
    return this.dim * 4 * (1 + this.slotCount);
  }

  /** Bytes held by the blocks (values, slots, step counts) and the index. */
  memoryBytes(): number {
    let b = this.index.bytes;
    for (let i = 0; i < this.values.length; i++) {
      b += this.values[i]!.byteLength + this.steps[i]!.byteLength;
      for (const s of this.slots[i]!) b += s.byteLength;
    }
    return b;
  }

  /** Allocated row capacity of the slabs. */
  get capacityRows(): number { return this.capacity; }

  // ---- internals ----

  /** The row's slot, creating (and initializing) the row if absent. */
  private slotOf(lo: number, hi: number): number {
    const s = this.index.lookup(lo, hi);
    return s >= 0 ? s : this.createRow(lo, hi, true);
  }

  private createRow(lo: number, hi: number, init: boolean): number {
    const s = this.count;
    if (s === this.capacity) this.grow(s + 1);
    // Grow first: if an allocation fails nothing points at a row that does not exist.
    this.index.insert(lo, hi, s);
    this.count++;
    const d = this.dim, blk = s >>> BLOCK_SHIFT, off = (s & BLOCK_MASK) * d;
    if (init) {
      this.initRow(this.values[blk]!, off, d, lo, hi);
      for (let k = 0; k < this.slotCount; k++) this.slots[blk]![k]!.fill(this.slotInit[k]!, off, off + d);
    }
    this.steps[blk]![s & BLOCK_MASK] = 0;
    return s;
  }

  /**
   * Room for `need` rows. A last block shorter than BLOCK_ROWS doubles (up to BLOCK_ROWS, a copy of
   * at most one block); past that, blocks are added and nothing is copied.
   */
  private grow(need: number): void {
    while (this.capacity < need) {
      const last = this.values.length - 1, lastRows = this.steps[last]!.length;
      if (lastRows < BLOCK_ROWS) this.regrowLast(Math.min(BLOCK_ROWS, Math.max(2 * lastRows, need - (this.capacity - lastRows))));
      else this.addBlock(BLOCK_ROWS);
    }
  }

  private addBlock(rows: number): void {
    const d = this.dim;
    // Allocated before anything points at it: a failed allocation leaves the store as it was.
    const values = this.alloc(Float32Array, rows * d);
    const slots = Array.from({ length: this.slotCount }, () => this.alloc(Float32Array, rows * d));
    const steps = this.alloc(Uint32Array, rows);
    this.values.push(values); this.slots.push(slots); this.steps.push(steps);
    this.capacity += rows;
  }

  private regrowLast(rows: number): void {
    const last = this.values.length - 1, d = this.dim, old = this.steps[last]!.length;
    const values = this.regrow(Float32Array, this.values[last]!, rows * d);
    const slots = this.slots[last]!.map((sl) => this.regrow(Float32Array, sl, rows * d));
    const steps = this.regrow(Uint32Array, this.steps[last]!, rows);
    this.values[last] = values; this.slots[last] = slots; this.steps[last] = steps;
    this.capacity += rows - old;
  }

  private regrow<T extends Float32Array | Uint32Array>(Ctor: new (n: number) => T, old: T, n: number): T {
    const a = this.alloc(Ctor, n);
    a.set(old as never);
    return a;
  }

  private alloc<T>(Ctor: new (n: number) => T, n: number): T {
    try {
      return new Ctor(n);
    } catch (e) {
      throw new RangeError(`table ${this.config?.name ?? ''}: cannot allocate ${n} elements (${this.count} rows, dim ${this.dim}): ${(e as Error).message}`);
    }
  }

  private slotSources(slots: ImportRows['slots']): (Float32Array | undefined)[] {
    if (!slots) return [];
    if (Array.isArray(slots)) return slots;
    return this.optimizer.slotNames.map((name) => (Object.hasOwn(slots, name) ? slots[name] : undefined));
  }

  private checkImport(data: ImportRows): string | null {
    if (!(data.keys instanceof BigUint64Array)) return 'keys must be a BigUint64Array';
    if (!(data.values instanceof Float32Array)) return 'values must be a Float32Array';
    const n = data.keys.length, d = this.dim;
    if (data.dim !== undefined && data.dim !== d) return `rows have dim ${data.dim}, the table has dim ${d}`;
    if (data.values.length !== n * d) return `values length ${data.values.length} does not match ${n} keys x dim ${d}`;
    const w = keyWords(data.keys);
    for (let i = 0; i < n; i++) if (w[2 * i + 1]! >= KEY_LIMIT_HI) return `key ${data.keys[i]} at position ${i} is not below 2^48`;
    if (Array.isArray(data.slots) && data.slots.length > this.slotCount) {
      return `${data.slots.length} slot arrays given, optimizer ${this.optimizer.name} has ${this.slotCount}`;
    }
    const src = this.slotSources(data.slots);
    for (let k = 0; k < src.length; k++) {
      const s = src[k];
      if (s === undefined) continue;
      if (!(s instanceof Float32Array) || s.length !== n * d) return `slot ${this.optimizer.slotNames[k]} must be a Float32Array of ${n} x ${d}`;
    }
    if (data.steps !== undefined && (!(data.steps instanceof Uint32Array) || data.steps.length !== n)) return `steps must be a Uint32Array of length ${n}`;
    return null;
  }
}
