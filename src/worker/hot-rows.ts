// Hot rows of BSP tables (issue #12, item 5; NVIDIA's "hybrid embedding" for MLPerf DLRM): the
// most frequent rows of each table live on every worker, are never pulled or pushed per step,
// and their gradients ride in the dense allreduce (the touched ones only, in a second sum after
// the dense one: see HotStep.sumWithDense). Every worker then applies the servers' own
// update function (same optimizer, hyper-parameters and slots, e.g. AdaGrad's accumulator) to
// the summed gradient, so every worker holds the same bits and the result is what the servers
// would have computed from the same BSP sum.
//
// Exactness: under BSP a server sums one clock's pushes per row (f64) and applies the update
// once to each row some worker pushed, with the f32 rounding of the sum. Here the ring sums the
// same f32 gradients (W = 2: one f32 add, the same correctly rounded value; W > 2: a different
// summation order, within the reference tolerance) and one extra float per hot row counts the
// workers that touched it, so the update runs exactly for the rows a server would update (Adam
// and FTRL move a row even on a zero gradient, so "touched" matters, not "non-zero").
//
// Held on the CPU of the worker (values, slots, update counts): the rows are copied into the
// step's gathered row buffer like pulled rows, so the GPU runner needs no change. The issue asks
// for GPU-resident rows; that is a later step (docs/training.md, "Hot rows").
import { KeyIndex } from '../keys/key-index.ts';
import { keyWords } from '../keys/keys.ts';
import { gatherKeys } from '../keys/index-arrays.ts';
import type { Optimizer } from '../server/optimizers.ts';
import type { PSClient, RowsWithState } from '../client/ps-client.ts';
import type { DenseHook } from './worker-step.ts';

/** One table's hot set: its keys (the same on every worker), row width, the servers' optimizer and resolved hyper-parameters. */
export interface HotTableInit { keys: BigUint64Array; dim: number; optimizer: Optimizer; hyper: Record<string, number> }

/** Rows with their optimizer state, in `keys` order (what a server's CopyRows carries). */
export type HotState = RowsWithState;

/** A step's unique keys of one table: the hot positions and their hot rows, and the rest (pulled and pushed). */
export interface HotSplit { hot: Int32Array; row: Int32Array; cold: Int32Array; coldKeys: BigUint64Array }

class HotTable {
  readonly index: KeyIndex;
  readonly values: Float32Array;
  readonly slots: Float32Array[];
  readonly steps: Uint32Array;
  constructor(readonly init: HotTableInit, readonly gradOffset: number, readonly countOffset: number) {
    const n = init.keys.length, d = init.dim, w = keyWords(init.keys);
    this.index = new KeyIndex(n);
    for (let r = 0; r < n; r++) {
      if (this.index.lookup(w[2 * r]!, w[2 * r + 1]!) >= 0) throw new Error(`hot rows: key ${init.keys[r]} is listed twice`);
      this.index.insert(w[2 * r]!, w[2 * r + 1]!, r);
    }
    this.values = new Float32Array(n * d);
    const initial = init.optimizer.initialSlotValues(init.hyper);
    this.slots = Array.from({ length: init.optimizer.slotCount }, (_, k) => new Float32Array(n * d).fill(initial[k] ?? 0));
    this.steps = new Uint32Array(n);
  }
}

export class HotRows {
  private readonly tables: (HotTable | null)[];
  /** Floats of a `stage` vector: every hot row's gradient, then one touch count per hot row. */
  readonly length: number;
  /** The staged gradients of the current step (zero outside the rows touched since the last apply). */
  private readonly staged: Float32Array;

  constructor(tables: (HotTableInit | null)[]) {
    let grads = 0, rows = 0;
    for (const t of tables) if (t) { grads += t.keys.length * t.dim; rows += t.keys.length; }
    let g = 0, c = grads;
    this.tables = tables.map((t) => {
      if (!t || t.keys.length === 0) return null;
      const h = new HotTable(t, g, c);
      g += t.keys.length * t.dim; c += t.keys.length;
      return h;
    });
    this.length = grads + rows;
    this.staged = new Float32Array(this.length);
  }

  /** Hot rows held, over all tables. */
  get rows(): number { return this.tables.reduce((a, t) => a + (t?.init.keys.length ?? 0), 0); }

  /** Table i's hot keys (empty when it has none). */
  keys(i: number): BigUint64Array { return this.tables[i]?.init.keys ?? new BigUint64Array(0); }

  /** Where a step's unique keys of table i are (null: the table holds no hot rows). */
  split(i: number, keys: BigUint64Array): HotSplit | null {
    const t = this.tables[i];
    if (!t) return null;
    const w = keyWords(keys), hot: number[] = [], row: number[] = [], cold: number[] = [];
    for (let j = 0; j < keys.length; j++) {
      const r = t.index.lookup(w[2 * j]!, w[2 * j + 1]!);
      if (r >= 0) { hot.push(j); row.push(r); } else cold.push(j);
    }
    return { hot: Int32Array.from(hot), row: Int32Array.from(row), cold: Int32Array.from(cold), coldKeys: gatherKeys(keys, cold) };
  }

  /** The step's rows of table i: the pulled cold rows (in `split.cold` order) and the held hot rows, in key order. */
  assemble(i: number, s: HotSplit, coldRows: Float32Array): Float32Array {
    const t = this.tables[i]!, d = t.init.dim;
    const out = new Float32Array((s.hot.length + s.cold.length) * d);
    for (let k = 0; k < s.cold.length; k++) out.set(coldRows.subarray(k * d, (k + 1) * d), s.cold[k]! * d);
    for (let k = 0; k < s.hot.length; k++) out.set(t.values.subarray(s.row[k]! * d, (s.row[k]! + 1) * d), s.hot[k]! * d);
    return out;
  }

  /** Rows pulled from the servers for `keys` of table i with the hot ones replaced by the held ones (reading a whole table). */
  overlay(i: number, keys: BigUint64Array, rows: Float32Array): Float32Array {
    const s = this.split(i, keys);
    if (!s) return rows;
    const t = this.tables[i]!, d = t.init.dim;
    for (let k = 0; k < s.hot.length; k++) rows.set(t.values.subarray(s.row[k]! * d, (s.row[k]! + 1) * d), s.hot[k]! * d);
    return rows;
  }

  /** The cold rows' gradients of table i (in `split.cold` order): what is pushed to the servers. */
  coldGrads(i: number, s: HotSplit, grads: Float32Array): Float32Array {
    const d = this.tables[i]!.init.dim, out = new Float32Array(s.cold.length * d);
    for (let k = 0; k < s.cold.length; k++) out.set(grads.subarray(s.cold[k]! * d, (s.cold[k]! + 1) * d), k * d);
    return out;
  }

  /**
   * Stages this step's hot gradients (one split and one gradient array per table, spec order)
   * and returns the vector to sum across workers: read it before the next `stage`.
   */
  stage(splits: (HotSplit | null)[], grads: Float32Array[]): Float32Array {
    const out = this.staged;
    splits.forEach((s, i) => {
      const t = this.tables[i];
      if (!s || !t) return;
      const d = t.init.dim, g = grads[i]!;
      for (let k = 0; k < s.hot.length; k++) {
        const r = s.row[k]!;
        out.set(g.subarray(s.hot[k]! * d, (s.hot[k]! + 1) * d), t.gradOffset + r * d);
        out[t.countOffset + r] = 1;
      }
    });
    return out;
  }

  /** The touch counts of a `stage` vector (one float per hot row, table after table): what the first sum carries. */
  counts(staged: Float32Array): Float32Array {
    return staged.subarray(this.gradLength);
  }

  /** Floats of hot gradients in a `stage` vector (the touch counts follow them). */
  get gradLength(): number {
    return this.length - this.rows;
  }

  /** Per table (spec order), the hot rows some worker touched, by summed touch counts `counts`. */
  touched(counts: Float32Array): Int32Array[] {
    if (counts.length !== this.rows) throw new Error(`hot rows: ${counts.length} touch counts, expected ${this.rows}`);
    return this.tables.map((t) => {
      if (!t) return new Int32Array(0);
      const n = t.init.keys.length, at = t.countOffset - this.gradLength, rows: number[] = [];
      for (let r = 0; r < n; r++) if (counts[at + r]! > 0) rows.push(r);
      return Int32Array.from(rows);
    });
  }

  /** This worker's staged gradients of the `touched` rows, packed table after table, row after row (zeros where it did not touch one). */
  pack(touched: Int32Array[]): Float32Array {
    let n = 0;
    touched.forEach((rows, i) => { n += rows.length * (this.tables[i]?.init.dim ?? 0); });
    const out = new Float32Array(n), staged = this.staged;
    let o = 0;
    touched.forEach((rows, i) => {
      const t = this.tables[i];
      if (!t) return;
      const d = t.init.dim;
      for (let k = 0; k < rows.length; k++, o += d) out.set(staged.subarray(t.gradOffset + rows[k]! * d, t.gradOffset + (rows[k]! + 1) * d), o);
    });
    return out;
  }

  /**
   * Applies the summed packed gradients `sums` (a `pack` of the same `touched` summed over
   * workers): the servers' update function once per touched row, in key order. Clears what this
   * worker staged.
   */
  apply(touched: Int32Array[], sums: Float32Array): void {
    const staged = this.staged;
    let o = 0;
    touched.forEach((rows, i) => {
      const t = this.tables[i];
      if (!t) return;
      const { dim: d, optimizer, hyper } = t.init, update = optimizer.update;
      if (o + rows.length * d > sums.length) throw new Error(`hot rows: summed gradient has ${sums.length} floats, fewer than the touched rows need`);
      for (let k = 0; k < rows.length; k++, o += d) {
        const r = rows[k]!;
        update(t.values, r * d, sums, o, d, t.slots, r * d, ++t.steps[r]!, hyper);
        staged.fill(0, t.gradOffset + r * d, t.gradOffset + (r + 1) * d);
        staged[t.countOffset + r] = 0;
      }
    });
    if (o !== sums.length) throw new Error(`hot rows: summed gradient has ${sums.length} floats, the touched rows ${o}`);
  }

  /** Table i's rows with their optimizer state (for a checkpoint's write-back), in hot-key order. */
  state(i: number): HotState | null {
    const t = this.tables[i];
    return t ? { keys: t.init.keys, values: t.values, slots: t.slots, steps: t.steps } : null;
  }

  /**
   * Takes the hot rows from the servers, once at the start (they are never pulled again): values,
   * optimizer slots and update counts as the servers hold them (a fresh table's rows come from
   * its initializer; a resumed one's from the checkpoint, which holds what `writeTo` wrote back).
   */
  async readFrom(client: PSClient, tableIds: number[]): Promise<void> {
    const read = await Promise.all(tableIds.map((id, i) => (this.tables[i] ? client.readRows(id, this.keys(i)) : null)));
    read.forEach((s, i) => { if (s) this.load(i, s); });
  }

  /**
   * Writes the hot rows that were ever updated, with their optimizer state, back to the servers
   * (rank 0, before a checkpoint: the table is whole there again). A row never updated is what
   * the servers read it as (ReadRows does not create rows), so it is left out: the checkpoint
   * holds the rows it would hold without hot rows, no more.
   */
  async writeTo(client: PSClient, tableIds: number[]): Promise<void> {
    await Promise.all(tableIds.map((id, i) => {
      const s = this.state(i);
      if (!s) return null;
      const d = this.tables[i]!.init.dim, idx: number[] = [];
      for (let r = 0; r < s.keys.length; r++) if (s.steps[r]! > 0) idx.push(r);
      if (!idx.length) return null;
      const rows = (a: Float32Array) => { const o = new Float32Array(idx.length * d); idx.forEach((r, k) => o.set(a.subarray(r * d, (r + 1) * d), k * d)); return o; };
      return client.writeRows(id, { keys: gatherKeys(s.keys, idx), values: rows(s.values), slots: s.slots.map(rows), steps: Uint32Array.from(idx, (r) => s.steps[r]!) });
    }));
  }

  /** Sets table i's rows and state from the servers' (in hot-key order), checked for shape first. */
  load(i: number, s: HotState): void {
    const t = this.tables[i];
    if (!t) throw new Error(`hot rows: table ${i} holds no hot rows`);
    const n = t.init.keys.length, d = t.init.dim;
    if (s.keys.length !== n || s.values.length !== n * d || s.steps.length !== n || s.slots.length !== t.slots.length || s.slots.some((x) => x.length !== n * d)) {
      throw new Error(`hot rows: state of ${s.keys.length} rows (${s.values.length} values, ${s.slots.length} slots) does not match ${n} hot rows of dim ${d} with ${t.slots.length} slots`);
    }
    for (let r = 0; r < n; r++) if (s.keys[r] !== t.init.keys[r]) throw new Error(`hot rows: state row ${r} is key ${s.keys[r]}, expected ${t.init.keys[r]}`);
    t.values.set(s.values);
    t.slots.forEach((x, k) => x.set(s.slots[k]!));
    t.steps.set(s.steps);
  }
}

/** Table i's rows of a split at `clock`: the cold ones pulled (issued now), the hot ones from `hot`. */
export function pullSplit(client: PSClient, hot: HotRows, tableId: number, i: number, s: HotSplit, clock: number): Promise<Float32Array> {
  const cold = s.cold.length ? client.pull(tableId, s.coldKeys, { clock }) : Promise.resolve(new Float32Array(0));
  return cold.then((rows) => hot.assemble(i, s, rows));
}

/** A hot set's step over the network: the cold part pulled and pushed, the dense gradient summed with the hot one. */
export class HotStep {
  private combined: Float32Array | null = null;
  constructor(readonly hot: HotRows, private readonly client: PSClient) {}

  /** Table i's rows for a step at `clock`: the cold ones pulled (issued now, so they join the step's batch), the hot ones held. */
  pull(tableId: number, i: number, keys: BigUint64Array, s: HotSplit, clock: number): Promise<Float32Array> {
    return pullSplit(this.client, this.hot, tableId, i, s, clock);
  }

  /** Pushes table i's cold gradients (nothing when every key was hot). */
  async push(tableId: number, i: number, s: HotSplit, grads: Float32Array, clock: number): Promise<void> {
    if (s.cold.length) await this.client.push(tableId, s.coldKeys, this.hot.coldGrads(i, s, grads), { clock });
  }

  /**
   * The staged hot gradients summed across workers through `hook`, the hot update applied;
   * returns the summed dense part. Two sums: first the dense gradient with one touch count per
   * hot row appended, then the gradients of just the rows some worker touched (the same list on
   * every worker, from the summed counts). Why not every hot row's gradient in one sum: at 4096
   * hot rows per table (94k rows x 64 floats, 24.5 MB) a step touches about 12k of them per
   * worker, so the one sum moved ~5x the bytes it needed and cost about what the servers saved
   * (bench/RESULTS.md, 2026-12-02 session 6: allreduce 211 -> 381 ms a step at W = 2). Without a
   * hook (one worker) the update applies to this worker's own gradients.
   */
  async sumWithDense(dense: Float32Array, staged: Float32Array, hook?: DenseHook): Promise<Float32Array> {
    const hot = this.hot;
    if (!hook) {
      // After the step's push has gone out (the client sends a turn's pushes in a setImmediate):
      // the update then runs while the servers work, not before the push leaves.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const touched = hot.touched(hot.counts(staged));
      hot.apply(touched, hot.pack(touched));
      return dense;
    }
    const counts = hot.counts(staged), n = dense.length + counts.length;
    if (this.combined?.length !== n) this.combined = new Float32Array(n);
    const buf = this.combined;
    buf.set(dense); buf.set(counts, dense.length);
    const out = (await hook(buf)) ?? buf;
    const touched = hot.touched(out.subarray(dense.length));
    const packed = hot.pack(touched);
    // Every worker makes this second sum, with the same length (the counts are summed exactly:
    // small integers in f32, or in fp16 on an fp16 ring), so the ring's sums stay in step.
    const sums = packed.length ? (await hook(packed)) ?? packed : packed;
    hot.apply(touched, sums);
    return out.subarray(0, dense.length);
  }
}
