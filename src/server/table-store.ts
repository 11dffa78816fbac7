// One table shard on a server: a KeyIndex (row id -> slot) plus rows in Float32Array blocks of
// BLOCK_ROWS rows, each row followed by its optimizer slots (row s in block s >> BLOCK_SHIFT at
// (s & BLOCK_MASK) * stride, stride = dim * (1 + slots); slot k at + (k + 1) * dim), and
// Uint32Array blocks of per-row update counts. For the built-in optimizers with a SIMD kernel the
// blocks live in one WebAssembly memory per table, updated in place and pulled by a WASM gather
// (simd-rows.ts). No object or Map entry per row (memory per row: docs/store.md). Keys are (lo,
// hi) u32 words (a Uint32Array view of the BigUint64Array): hot paths do no BigInt arithmetic.
import { KeyIndex } from '../keys/key-index.ts';
import { makeRowInitializer, type RowInitializer } from './initializers.ts';
import { getOptimizer, resolveHyper, type Optimizer, type UpdateFn } from './optimizers.ts';
import { keyWords } from '../keys/keys.ts';
import { checkImport, checkTableConfig, slotSources, type ImportRows, type TableConfig, type TableRows } from './table-config.ts';
import { WasmRows } from './simd-rows.ts';
import { SlotsMemo } from './recent-slots.ts';
export { checkPush } from './request-checks.ts';
export { checkTableConfig, MAX_DIM, type ImportRows, type TableConfig, type TableRows } from './table-config.ts';
import { BLOCK_MASK, BLOCK_ROWS, BLOCK_SHIFT, FLOATS_PER_LINE, TOUCH_BLOCK, countByBlock } from './row-blocks.ts';
import { copyRow } from '../util/row-words.ts';

const MIN_ROWS = 64;
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
  /** The blocks' WASM memory and the built-in update in SIMD (bit-identical to `update`), or null: `update` per row. */
  private readonly wasm: WasmRows | null;
  /** Floats from one row to the next: the row and its slots. */
  private readonly stride: number;
  private readonly slotInit: number[];
  private capacity = 0; private count = 0;
  /** Rows with their slots, one array per block; the last block may be shorter than BLOCK_ROWS. */
  private readonly values: Float32Array[] = [];
  /** slots[b][k]: block b seen from slot k of its first row (the arrays update fns get for a row of block b). */
  private readonly slots: Float32Array[][] = [];
  /** Byte offset of each block in the WASM memory (-1: a plain array, the memory was full), and the WASM memory's generation the views were made at. */
  private readonly blockAt: number[] = [];
  private viewsOf = 0;
  /** Every block in the WASM memory: pushes run the SIMD kernel. */
  private allWasm: boolean;
  private rowAtScratch = new Int32Array(0);
  private slotScratch = new Int32Array(0);
  /** The blocks' floats as 32-bit words: pulls copy rows as integers (no float conversions). */
  private readonly words: Int32Array[] = [];
  private readonly steps: Uint32Array[] = [];
  private readonly recent = new SlotsMemo(); // the slots of recent key lists (recent-slots.ts)
  private touchSink = 0; // where touch loops leave their sum, so their loads are not dropped as unused

  constructor(cfg: TableConfig) {
    const bad = checkTableConfig(cfg);
    if (bad) throw new Error(bad);
    this.config = Object.freeze({ ...cfg, hyper: { ...cfg.hyper } });
    this.dim = cfg.dim;
    this.optimizer = getOptimizer(cfg.optimizer);
    this.slotCount = this.optimizer.slotCount;
    this.hyper = Object.freeze(resolveHyper(this.optimizer, cfg.hyper));
    this.update = this.optimizer.update;
    this.stride = this.dim * (1 + this.slotCount);
    this.wasm = this.optimizer.builtin && !cfg.scalarUpdates ? WasmRows.create(this.optimizer.name, this.hyper, this.dim) : null;
    this.allWasm = this.wasm !== null;
    this.slotInit = this.optimizer.initialSlotValues({ ...this.hyper });
    this.initRow = makeRowInitializer({ init: cfg.init, scale: cfg.initScale, seed: cfg.seed });
    const expected = cfg.expectedRows ?? 0;
    this.index = new KeyIndex(expected);
    // Full blocks for the expected rows and the rest in a last, shorter one: no slack.
    for (let left = Math.max(MIN_ROWS, expected); left > 0; left -= BLOCK_ROWS) this.addBlock(Math.min(BLOCK_ROWS, left));
  }

  get rows(): number { return this.count; }
  /** Whether pushes run the optimizer's WASM SIMD kernel (else its JS update per row). */
  get simdUpdates(): boolean { return this.allWasm; }
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
    // Index probes first (every missing row created), then the copies, in touch blocks (TOUCH_BLOCK).
    const slots = this.slotsOf(keys);
    if (this.allWasm && !state) return this.pullWasm(slots, n, out);
    const v = this.words, stride = this.stride, o = new Int32Array(out.buffer, out.byteOffset, out.length);
    for (let b = 0; b < n; b += TOUCH_BLOCK) {
      const e = Math.min(n, b + TOUCH_BLOCK);
      this.touchRows(slots, b, e, !!state);
      for (let i = b; i < e; i++) {
        const s = slots[i]!, blk = s >>> BLOCK_SHIFT, r = s & BLOCK_MASK, at = r * stride;
        copyRow(o, i * d, v[blk]!, at, d);
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
    if (this.allWasm) return this.applyWasm(rows, n, grads);
    const update = this.update, hyper = this.hyper as Record<string, number>, slots = this.slots, values = this.values, stride = this.stride;
    for (let b = 0; b < n; b += TOUCH_BLOCK) {
      const e = Math.min(n, b + TOUCH_BLOCK);
      this.touchRows(rows, b, e, true);
      for (let i = b; i < e; i++) {
        const s = rows[i]!, blk = s >>> BLOCK_SHIFT, r = s & BLOCK_MASK;
        const step = ++this.steps[blk]![r]!;
        update(values[blk]!, r * stride, grads, i * d, d, slots[blk]!, r * stride, step, hyper);
      }
    }
  }

  /** The byte offsets in the WASM memory of rows slots[0..n), in a scratch array valid until the next call. */
  private rowOffsets(rows: Int32Array, n: number): Int32Array {
    if (this.rowAtScratch.length < n) this.rowAtScratch = new Int32Array(Math.max(n, this.rowAtScratch.length * 2));
    const rowAt = this.rowAtScratch, blockAt = this.blockAt, rowBytes = this.stride * 4;
    for (let i = 0; i < n; i++) { const s = rows[i]!; rowAt[i] = blockAt[s >>> BLOCK_SHIFT]! + (s & BLOCK_MASK) * rowBytes; }
    return rowAt;
  }

  /**
   * pull() of rows in the WASM memory: copied by the WASM gather (memory.copy a row), which
   * touches each block's rows in WASM first (simd-rows.ts). No JS touch loop: it only added work
   * (4096 rows of 1M x 64: 1.68-1.74 -> 1.33-1.37 ms a pull without it; bench/RESULTS.md, session 8).
   */
  private pullWasm(rows: Int32Array, n: number, out: Float32Array): Float32Array {
    this.wasm!.gather(this.rowOffsets(rows, n), 0, n, this.dim, out, 0);
    return out;
  }

  /**
   * apply() through the SIMD kernel, the rows' byte offsets in push order. No JS touch loop: the
   * kernel's own WASM touch (simd-rows.ts) fetches each block's rows with their slots first
   * (docs/store.md, "Touch or not"). Adam reads each row's count before its update; the other
   * kernels' rows are counted block by block.
   */
  private applyWasm(rows: Int32Array, n: number, grads: Float32Array): void {
    const rowAt = this.rowOffsets(rows, n), steps = this.steps;
    const step = this.wasm!.perRow ? (i: number) => { const s = rows[i]!; return ++steps[s >>> BLOCK_SHIFT]![s & BLOCK_MASK]!; } : null;
    if (!step) countByBlock(rows, n, steps);
    this.wasm!.run(rowAt, 0, n, grads, step);
  }

  /** The slot of every key (rows created on first touch), in a scratch array valid until the next call. */
  private slotsOf(keys: BigUint64Array): Int32Array {
    const n = keys.length, w = keyWords(keys), known = this.recent.find(w);
    if (known) return known; // the keys of a recent request: the rows exist, their slots are these
    if (this.slotScratch.length < n) this.slotScratch = new Int32Array(Math.max(n, this.slotScratch.length * 2));
    const out = this.slotScratch, index = this.index;
    let sink = 0;
    for (let b = 0; b < n; b += TOUCH_BLOCK) {
      const e = Math.min(n, b + TOUCH_BLOCK);
      for (let i = b; i < e; i++) sink += index.touch(w[2 * i]!, w[2 * i + 1]!);
      for (let i = b; i < e; i++) out[i] = this.slotOf(w[2 * i]!, w[2 * i + 1]!);
    }
    this.touchSink = sink;
    this.recent.remember(w, out, n);
    return out;
  }

  /**
   * Reads one word per cache line of rows slots[b..e) (and of their optimizer slots and step
   * counts with `all`), so that the loop that really uses them finds them in cache.
   */
  private touchRows(slots: Int32Array, b: number, e: number, all: boolean): void {
    const stride = this.stride, len = all ? stride : this.dim;
    let sink = 0;
    for (let i = b; i < e; i++) {
      const s = slots[i]!, blk = s >>> BLOCK_SHIFT, r = s & BLOCK_MASK, at = r * stride;
      const v = this.values[blk]!;
      for (let j = 0; j < len; j += FLOATS_PER_LINE) sink += v[at + j]!;
      if (all) sink += this.steps[blk]![r]!;
    }
    this.touchSink = sink;
  }

  /**
   * Copies of the rows for `keys` with their slots and step counts, in the order asked. A missing
   * row reads as a new one would start (the initializer, initial slots, count 0) and is not
   * created: reading changes nothing.
   */
  readRows(keys: BigUint64Array): TableRows {
    const n = keys.length, d = this.dim, w = keyWords(keys);
    const values = new Float32Array(n * d), slots = Array.from({ length: this.slotCount }, () => new Float32Array(n * d)), steps = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const s = this.index.lookup(w[2 * i]!, w[2 * i + 1]!);
      if (s < 0) {
        this.initRow(values, i * d, d, w[2 * i]!, w[2 * i + 1]!);
        for (let k = 0; k < slots.length; k++) slots[k]!.fill(this.slotInit[k]!, i * d, (i + 1) * d);
        continue;
      }
      this.copyRow(s, values, slots, steps, i);
    }
    return { keys: keys.slice(), values, slots, steps };
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
      this.copyRow(this.index.lookup(kw[2 * r]!, kw[2 * r + 1]!), values, slots, steps, r);
    }
    return { keys, values, slots, steps };
  }

  /** Row slot `s` (value, optimizer slots, update count) copied to position `to` of packed arrays. */
  private copyRow(s: number, values: Float32Array, slots: Float32Array[], steps: Uint32Array, to: number): void {
    const d = this.dim, blk = s >>> BLOCK_SHIFT, from = (s & BLOCK_MASK) * this.stride;
    values.set(this.values[blk]!.subarray(from, from + d), to * d);
    for (let k = 0; k < slots.length; k++) slots[k]!.set(this.slots[blk]![k]!.subarray(from, from + d), to * d);
    steps[to] = this.steps[blk]![s & BLOCK_MASK]!;
  }

  /**
   * Inserts or replaces rows with their slots and steps; with `keep`, only rows for which it
   * returns true (a server restoring a checkpoint keeps the keys it owns). Everything is checked
   * before any row changes. Returns the number of rows written.
   */
  importRows(data: ImportRows, keep?: (lo: number, hi: number) => boolean): number {
    const bad = checkImport(data, this.dim, this.optimizer);
    if (bad) throw new Error(`importRows into table ${this.config.name}: ${bad}`);
    const d = this.dim, n = data.keys.length;
    const w = keyWords(data.keys);
    const src = slotSources(this.optimizer, data.slots);
    let written = 0;
    for (let r = 0; r < n; r++) {
      const lo = w[2 * r]!, hi = w[2 * r + 1]!;
      if (keep && !keep(lo, hi)) continue;
      let s = this.index.lookup(lo, hi);
      if (s < 0) s = this.createRow(lo, hi, false);
      const blk = s >>> BLOCK_SHIFT, at = (s & BLOCK_MASK) * this.stride;
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
    // A block's slot arrays are views of its row array: counted once; WASM blocks by the memory's bytes in use.
    for (let i = 0; i < this.values.length; i++) b += (this.blockAt[i]! >= 0 ? 0 : this.values[i]!.byteLength) + this.steps[i]!.byteLength;
    if (this.wasm) b += this.wasm.bytesUsed;
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
    const d = this.dim, blk = s >>> BLOCK_SHIFT, off = (s & BLOCK_MASK) * this.stride;
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
    // Allocated before anything points at it: a failed allocation leaves the store as it was.
    const at = this.blockStorage(rows);
    const steps = this.alloc(Uint32Array, rows);
    this.blockAt.push(at.offset);
    this.setBlock(this.values.length, at.values);
    this.steps.push(steps);
    this.capacity += rows;
    this.refreshViews();
  }

  private regrowLast(rows: number): void {
    const last = this.values.length - 1, old = this.steps[last]!.length;
    const steps = this.alloc(Uint32Array, rows);
    steps.set(this.steps[last]!);
    const inPlace = this.blockAt[last]! >= 0 && this.wasm!.resize(this.blockAt[last]!, rows * this.stride * 4);
    if (inPlace) {
      // The last block is the WASM memory's last allocation: extended where it is, nothing copied.
      this.steps[last] = steps;
      this.viewsOf = -1;
      this.refreshViews();
    } else {
      const at = this.blockStorage(rows);
      this.refreshViews(); // the old block's views, if the memory grew
      at.values.set(this.values[last]!);
      this.blockAt[last] = at.offset;
      this.setBlock(last, at.values);
      this.steps[last] = steps;
    }
    this.capacity += rows - old;
  }

  /** Zeroed storage for `rows` rows with their slots: in the WASM memory where there is one and it has room. */
  private blockStorage(rows: number): { offset: number; values: Float32Array } {
    const floats = rows * this.stride;
    const offset = this.wasm ? this.wasm.alloc(floats * 4) : -1;
    if (offset >= 0) return { offset, values: new Float32Array(this.wasm!.buffer, offset, floats) };
    this.allWasm = false; // past 4 GiB in one table: the JS update for every row from now on
    return { offset: -1, values: this.alloc(Float32Array, floats) };
  }

  /** Block i's rows are `values`: its slot views and word view with them. */
  private setBlock(i: number, values: Float32Array): void {
    this.values[i] = values;
    this.slots[i] = this.slotViews(values);
    this.words[i] = new Int32Array(values.buffer, values.byteOffset, values.length);
  }

  /** Slot k's view of a block: the same floats from (k + 1) * dim on, so row r's slot k is at r * stride. */
  private slotViews(values: Float32Array): Float32Array[] {
    return Array.from({ length: this.slotCount }, (_, k) => values.subarray((k + 1) * this.dim));
  }

  /** Makes the WASM blocks' views again after the memory grew (growing detaches the old buffer). */
  private refreshViews(): void {
    if (!this.wasm || this.viewsOf === this.wasm.generation) return;
    this.viewsOf = this.wasm.generation;
    const buf = this.wasm.buffer;
    for (let i = 0; i < this.values.length; i++) {
      const at = this.blockAt[i]!;
      if (at < 0) continue;
      this.setBlock(i, new Float32Array(buf, at, this.steps[i]!.length * this.stride));
    }
  }

  private alloc<T>(Ctor: new (n: number) => T, n: number): T {
    try {
      return new Ctor(n);
    } catch (e) {
      throw new RangeError(`table ${this.config?.name ?? ''}: cannot allocate ${n} elements (${this.count} rows, dim ${this.dim}): ${(e as Error).message}`);
    }
  }
}
