// A worker-side cache of one SSP or ASP table's rows (issue #12, item 3): hot rows are served
// locally for as long as the table's consistency allows, with this worker's own pushes applied
// to them, so a skewed batch pulls only the rows it does not hold yet.
//
// Why it stays exact (docs/architecture.md, consistency, has the long form):
// - SSP(s) promises a read at clock c every update of the clocks < c - s, plus all of this
//   worker's own. A pull reply says how fresh its rows are (PullReply.fresh = m: every live
//   worker had finished the clocks < m when the server read them, and their pushes were applied
//   before they said so). A cached row of freshness m may serve clock c while c - s <= m; the
//   clock the pull carried only says m >= r - s, so it is not what is stored.
// - Own updates: each push applies the servers' update function to the cached copy with the very
//   gradient the servers receive (rounded as the wire rounds it). A row enters only from a pull
//   issued after the previous push was acknowledged, so it holds every own push before it and
//   none after; for SGD at W = 1 it equals the server's row bit for bit (test).
// - Stateful optimizers (AdaGrad, Adam, FTRL): a held row carries its slots (and Adam its count),
//   pulled with it (PullPart.state, f32 only); every own push updates row and state with the
//   servers' function, so at W = 1 the held (row, state) is the server's bit for bit (test). At
//   W > 1 both lack the others' pushes since the read (SSP allows it for the row; for the state it
//   only changes the size of this worker's own steps) until the next read replaces them. A held
//   state serves row-only refreshes for `stateRefresh` clocks, then travels with the row again;
//   rows enter with their state only on their second touch within ADMIT_WINDOW clocks
//   (docs/training.md, "Row cache", has the long form).
// - Which way, and what it costs: the admission and state policies were chosen by pull bytes
//   (`bench step --cache-policy ...`; second touch with state kept 16 clocks: the fewest bytes),
//   and the cache's CPU is why it does not pay on one 2-core box: bench/RESULTS.md (2026-12-02,
//   sessions 6 and 7) has both, docs/training.md the summary.
// - ASP has no bound: a cached row is served for `aspRefresh` clocks after the clock it was read
//   at (`--cache-refresh`), then pulled again.
//
// Eviction: expired rows first (they can never be served again), then least recently used (by
// clock of last use), an eighth of the capacity per pass (the key index is rebuilt: it has no
// delete); the current clock's rows are never evicted for each other.
//
// Storage: row s and then its slots at s * stride (stride = (1 + slots) * dim floats), the layout
// the servers' SIMD kernels read (src/server/simd-rows.ts). With a built-in optimizer that has a
// kernel, that storage is a WASM memory sized for the capacity up front (never grown, so no view
// of it is ever detached) and applyPush is one kernel call over the held rows a push touches;
// otherwise (custom update, no WASM SIMD) it is a plain array and the JS update runs per row.
import { KeyIndex, hash64 } from '../keys/key-index.ts';
import { keyWords } from '../keys/keys.ts';
import { roundToWire, rowValueBytes, type RowFormat } from '../wire/row-format.ts';
import type { UpdateFn } from '../server/optimizers.ts';
import { WasmRows } from '../server/simd-rows.ts';
import { copyRow } from '../server/row-blocks.ts';
import type { PulledState } from '../client/ps-client.ts';

export interface RowCacheOptions {
  dim: number;
  /** Rows held at most (> 0). */
  capacity: number;
  consistency: 'ssp' | 'asp';
  /** SSP's bound s; ASP: clocks a row is served after the clock it was read at. */
  staleness: number; aspRefresh: number;
  /** The table's update function and its resolved hyperparameters. */
  update: UpdateFn; hyper: Record<string, number>;
  /** The built-in optimizer `update` is (by name): with a SIMD kernel, the update runs in WASM as the servers' does (absent: JS). */
  optimizer?: string;
  /** false: the JS update even where a kernel exists (tests compare the two). */
  simd?: boolean;
  /** How gradients travel: under f16 / bf16 they are applied rounded, as the servers receive them. */
  format: RowFormat;
  /** The optimizer's slot rows per row (0: stateless, SGD); a stateful cache holds them and the count (PSClient.pullWithState). */
  slotCount?: number;
  /** Stateful: clocks a held state keeps serving row-only refreshes after it was read (0: pulled with every row). */
  stateRefresh?: number;
  /** Stateful: which missing rows are pulled with their state and held: all, or those this cache saw in the last ADMIT_WINDOW clocks. */
  admit?: 'all' | 'second-touch';
}

/** Second-touch admission: a row looked up within this many clocks before is admitted. */
export const ADMIT_WINDOW = 8;

/** Which positions of a miss to pull with their state (to be held) and which as rows only (held when their state is). */
export interface PullPlan { withState: Int32Array; rowsOnly: Int32Array }

export interface RowCacheStats {
  hits: number; misses: number; evictions: number;
  /** Pull bytes not sent: key and row of every hit, at the wire's value width. */
  bytesSaved: number;
}

const NO_SLOTS: Float32Array[] = [];
const NO_STEP = (): number => 0;

/** An Int32Array view of a Float32Array's words (rows are copied as words: row-blocks.ts, copyRow). */
const words = (a: Float32Array): Int32Array => new Int32Array(a.buffer, a.byteOffset, a.length);

export class RowCache {
  readonly stats: RowCacheStats = { hits: 0, misses: 0, evictions: 0, bytesSaved: 0 };
  /** Stateful: rows pulled with their optimizer state (each costs its slots and a count more than a row). */
  statePulls = 0;
  private readonly index: KeyIndex;
  /** Row s at s * stride, its slot q at s * stride + (q + 1) * dim; in WASM memory when `wasm`. */
  private readonly mem: Float32Array;
  private readonly mem32: Int32Array;
  private readonly stride: number;
  /** The kernels' memory (null: the JS update), and where `mem` starts in it (bytes). */
  private readonly wasm: WasmRows | null = null;
  private readonly memAt: number = 0;
  /** applyPush's lists: held rows' byte offsets, their positions in the push, their slots. */
  private rowAt = new Int32Array(0);
  private gradRow = new Int32Array(0);
  private pushSlot = new Int32Array(0);
  private readonly stepOf: (i: number) => number;
  private readonly round: ((g: Float32Array) => void) | undefined;
  /** scan's and plan's position lists (copied out: callers keep them). */
  private idxScratch = new Int32Array(0);
  private idxScratch2 = new Int32Array(0);
  /** Per slot: SSP, the reply's freshness; ASP, the clock the row was read at. -1: free. */
  private readonly stamp: Int32Array;
  private readonly lastUse: Int32Array;
  private readonly keyLo: Uint32Array;
  private readonly keyHi: Uint32Array;
  private free: number[] = [];
  private readonly rowBytes: number;
  private scratch = new Float32Array(0);
  /** Stateful: per slot, its optimizer slot rows (views of `mem` at offset (q + 1) * dim: the JS update's slot arrays), update count and the clock the state was read at (-1: none). */
  private readonly slots: Float32Array[];
  private readonly steps: Uint32Array;
  private readonly stateClock: Int32Array;
  /** Second-touch admission: last clock + 1 a key hashing here was looked up (0: never). */
  private readonly seen: Int32Array;
  private readonly seenMask: number;

  constructor(readonly opts: RowCacheOptions) {
    if (!(Number.isInteger(opts.capacity) && opts.capacity > 0)) throw new Error(`row cache: capacity ${opts.capacity} must be a positive integer`);
    const n = opts.capacity;
    this.index = new KeyIndex(n);
    this.stamp = new Int32Array(n).fill(-1);
    this.lastUse = new Int32Array(n);
    this.keyLo = new Uint32Array(n);
    this.keyHi = new Uint32Array(n);
    for (let s = n - 1; s >= 0; s--) this.free.push(s);
    this.rowBytes = 8 + opts.dim * rowValueBytes(opts.format);
    const k = opts.slotCount ?? 0;
    if (k > 0 && opts.format !== 'f32') throw new Error('row cache: a stateful optimizer\'s rows are cached only on an f32 wire (its state travels exactly)');
    const d = opts.dim;
    this.stride = (1 + k) * d;
    const bytes = n * this.stride * 4;
    if (opts.optimizer !== undefined && opts.simd !== false) this.wasm = WasmRows.create(opts.optimizer, opts.hyper, d, bytes);
    if (this.wasm) {
      this.memAt = this.wasm.alloc(bytes);
      this.mem = new Float32Array(this.wasm.buffer, this.memAt, n * this.stride);
    } else {
      this.mem = new Float32Array(n * this.stride);
    }
    this.mem32 = words(this.mem);
    this.slots = Array.from({ length: k }, (_, q) => this.mem.subarray((q + 1) * d));
    this.steps = new Uint32Array(k > 0 ? n : 0);
    this.stateClock = new Int32Array(k > 0 ? n : 0).fill(-1);
    let m = 1;
    while (k > 0 && opts.admit === 'second-touch' && m < 8 * n) m *= 2;
    this.seen = new Int32Array(m > 1 ? m : 0);
    this.seenMask = m - 1;
    // Adam's bias correction reads the count after this update, as TableStore.applyWasm counts it.
    this.stepOf = k > 0 ? (i: number) => ++this.steps[this.pushSlot[i]!]! : NO_STEP;
    const format = opts.format;
    this.round = format === 'f32' ? undefined : (g: Float32Array) => { roundToWire(g, format); };
  }

  get stateful(): boolean { return this.slots.length > 0; }

  /** Whether applyPush runs the WASM SIMD kernel (else the JS update per row). */
  get simdUpdates(): boolean { return this.wasm !== null; }

  /** Stateful: may the state in `slot` still serve a row-only refresh at `clock`? */
  private stateUsable(slot: number, clock: number): boolean {
    const at = this.stateClock[slot]!;
    return at >= 0 && clock - at <= (this.opts.stateRefresh ?? 0);
  }

  get size(): number { return this.opts.capacity - this.free.length; }

  /** May the row in `slot` serve a read at `clock`? */
  private valid(slot: number, clock: number): boolean {
    const st = this.stamp[slot]!;
    if (st < 0) return false;
    return this.opts.consistency === 'ssp' ? clock - this.opts.staleness <= st : clock < st + this.opts.aspRefresh;
  }

  private slotOf(w: Uint32Array, j: number): number { return this.index.lookup(w[2 * j]!, w[2 * j + 1]!); }

  /** Positions of the keys this cache cannot serve at `clock` (counts nothing). */
  missing(keys: BigUint64Array, clock: number): Int32Array {
    return this.scan(keys, clock, null);
  }

  /** Copies every row servable at `clock` into `out` (keys.length x dim) and counts; returns the positions of the others. */
  serve(keys: BigUint64Array, clock: number, out: Float32Array): Int32Array {
    const miss = this.scan(keys, clock, out);
    const hits = keys.length - miss.length;
    this.stats.hits += hits;
    this.stats.misses += miss.length;
    this.stats.bytesSaved += hits * this.rowBytes;
    return miss;
  }

  /**
   * How to pull the missing positions `idx` for `clock`. Stateless: all as rows (each is then
   * held). Stateful: rows whose held state is usable as rows only; the others with their state
   * when admitted (every one, or second-touch: looked up in the last ADMIT_WINDOW clocks), else
   * as rows only, used once and not held.
   */
  plan(keys: BigUint64Array, idx: ArrayLike<number>, clock: number): PullPlan {
    if (!this.stateful) return { withState: new Int32Array(0), rowsOnly: Int32Array.from(idx) };
    if (this.idxScratch.length < idx.length) { this.idxScratch = new Int32Array(idx.length * 2); this.idxScratch2 = new Int32Array(idx.length * 2); }
    const w = keyWords(keys), withState = this.idxScratch, rowsOnly = this.idxScratch2;
    let a = 0, r = 0;
    for (let k = 0; k < idx.length; k++) {
      const j = idx[k]!, lo = w[2 * j]!, hi = w[2 * j + 1]!, s = this.index.lookup(lo, hi);
      if (s >= 0 && this.stateUsable(s, clock)) { rowsOnly[r++] = j; continue; }
      let admit = true;
      if (this.seen.length) { const at = this.seen[hash64(lo, hi) & this.seenMask]! - 1; admit = at >= 0 && at < clock && at >= clock - ADMIT_WINDOW; }
      if (admit) withState[a++] = j; else rowsOnly[r++] = j;
    }
    return { withState: withState.slice(0, a), rowsOnly: rowsOnly.slice(0, r) };
  }

  /** Second-touch admission: these keys were looked up at `clock` (after that clock's plans). */
  touchSeen(keys: BigUint64Array, clock: number): void {
    if (!this.seen.length) return;
    const w = keyWords(keys);
    for (let j = 0; j < keys.length; j++) this.seen[hash64(w[2 * j]!, w[2 * j + 1]!) & this.seenMask] = clock + 1;
  }

  /**
   * Stateful: holds the rows at positions `idx` of `rows` (keys.length x dim) with their state
   * (`state` in idx order, as PSClient.pullWithState gives it), read at `readClock`.
   */
  insertWithState(keys: BigUint64Array, idx: ArrayLike<number>, rows: Float32Array, fresh: number, readClock: number, state: PulledState): void {
    if (state.slots.length !== this.slots.length) throw new Error(`row cache: state of ${state.slots.length} slots for an optimizer of ${this.slots.length}`);
    this.statePulls += idx.length;
    this.place(keys, idx, rows, fresh, readClock, state);
  }

  /**
   * Holds the rows at positions `idx` of `rows` (keys.length x dim), pulled at `readClock` with
   * reply freshness `fresh`, as last used at `readClock`. Rows with unknown freshness (-1, an
   * older server) are not held under SSP. A freshness above the read clock cannot be true (this
   * worker is live and had not finished that clock): it is taken as the read clock, which the
   * rows do cover, so a wrong reply never makes a row look fresher than the pull's own clock.
   */
  insert(keys: BigUint64Array, idx: ArrayLike<number>, rows: Float32Array, fresh: number, readClock: number): void {
    this.place(keys, idx, rows, fresh, readClock, null);
  }

  /**
   * Stores rows (see insert). With `state`, its k-th row's state goes with the row at idx[k];
   * without it a stateful cache only refreshes rows whose held state is usable (a row must travel
   * with its state). Rows and slots are copied as words, no view per row (row-blocks.ts, copyRow).
   */
  private place(keys: BigUint64Array, idx: ArrayLike<number>, rows: Float32Array, fresh: number, readClock: number, state: PulledState | null): void {
    const stamp = this.opts.consistency === 'ssp' ? Math.min(fresh, readClock) : readClock;
    if (stamp < 0 || idx.length === 0) return;
    const d = this.opts.dim, stride = this.stride, mem = this.mem32, w = keyWords(keys), needState = this.stateful && !state;
    const src = words(rows), slotSrc = state ? state.slots.map(words) : null;
    for (let k = 0; k < idx.length; k++) {
      const j = idx[k]!, lo = w[2 * j]!, hi = w[2 * j + 1]!;
      let s = this.index.lookup(lo, hi);
      if (needState && (s < 0 || !this.stateUsable(s, readClock))) continue;
      if (s < 0) {
        if (this.free.length === 0) this.evict(readClock);
        if (this.free.length === 0) return; // every held row is in use at this clock
        s = this.free.pop()!;
        this.index.insert(lo, hi, s);
        this.keyLo[s] = lo;
        this.keyHi[s] = hi;
      }
      copyRow(mem, s * stride, src, j * d, d);
      this.stamp[s] = stamp;
      this.lastUse[s] = readClock;
      if (!slotSrc) continue;
      for (let q = 0; q < slotSrc.length; q++) copyRow(mem, s * stride + (q + 1) * d, slotSrc[q]!, k * d, d);
      this.steps[s] = state!.steps[k]!;
      this.stateClock[s] = readClock;
    }
  }

  /**
   * This worker's push of `grads` (keys.length x dim): applied to the held rows as the servers
   * apply it. The caller serves nothing until the push is acknowledged, and clears the cache if
   * it fails.
   */
  applyPush(keys: BigUint64Array, grads: Float32Array): void {
    if (this.wasm) { this.applyPushWasm(keys, grads); return; }
    const { update, hyper } = this.opts, d = this.opts.dim, stride = this.stride, w = keyWords(keys);
    let g = grads;
    if (this.opts.format !== 'f32') {
      if (this.scratch.length < grads.length) this.scratch = new Float32Array(grads.length);
      g = this.scratch.subarray(0, grads.length);
      g.set(grads);
      roundToWire(g, this.opts.format);
    }
    if (this.stateful) {
      // Every held state takes the push (an expired row's too: its state may serve a refresh), as TableStore.apply does.
      for (let j = 0; j < keys.length; j++) {
        const s = this.slotOf(w, j);
        if (s >= 0 && this.stateClock[s]! >= 0) update(this.mem, s * stride, g, j * d, d, this.slots, s * stride, ++this.steps[s]!, hyper);
      }
      return;
    }
    for (let j = 0; j < keys.length; j++) {
      const s = this.slotOf(w, j);
      if (s >= 0 && this.stamp[s]! >= 0) update(this.mem, s * stride, g, j * d, d, NO_SLOTS, 0, 0, hyper);
    }
  }

  /**
   * applyPush through the kernel: the held rows the push touches (the same rows, in the same
   * order, as the JS loop above), their gradients gathered into the kernel's scratch and rounded
   * there to the wire's format; one kernel call per chunk (Adam: per row, its count in the scalars).
   */
  private applyPushWasm(keys: BigUint64Array, grads: Float32Array): void {
    const n = keys.length, w = keyWords(keys), held = this.stateful ? this.stateClock : this.stamp, rowBytes = this.stride * 4;
    if (this.rowAt.length < n) { this.rowAt = new Int32Array(n * 2); this.gradRow = new Int32Array(n * 2); this.pushSlot = new Int32Array(n * 2); }
    const rowAt = this.rowAt, gradRow = this.gradRow, pushSlot = this.pushSlot;
    let m = 0;
    for (let j = 0; j < n; j++) {
      const s = this.slotOf(w, j);
      if (s < 0 || held[s]! < 0) continue;
      rowAt[m] = this.memAt + s * rowBytes; gradRow[m] = j; pushSlot[m] = s; m++;
    }
    if (m > 0) this.wasm!.runAt(rowAt, gradRow, m, grads, this.stepOf, this.round);
  }

  /**
   * Instrumentation (traces, tests): per key, its stamp (-1: not held: SSP, the freshness; ASP, the
   * read clock) and, with `out` (keys.length x dim), the held row copied there. Counts nothing.
   */
  peek(keys: BigUint64Array, out?: Float32Array, state?: PulledState): Int32Array {
    const d = this.opts.dim, stride = this.stride, w = keyWords(keys), stamp = new Int32Array(keys.length).fill(-1);
    for (let j = 0; j < keys.length; j++) {
      const s = this.slotOf(w, j);
      if (s < 0) continue;
      stamp[j] = this.stamp[s]!;
      out?.set(this.mem.subarray(s * stride, s * stride + d), j * d);
      if (!state || !this.stateful) continue;
      this.slots.forEach((_, q) => state.slots[q]!.set(this.mem.subarray(s * stride + (q + 1) * d, s * stride + (q + 2) * d), j * d));
      state.steps[j] = this.steps[s]!;
    }
    return stamp;
  }

  /** The positions of the keys not servable at `clock`; with `out`, the others' rows copied there and marked used. */
  private scan(keys: BigUint64Array, clock: number, out: Float32Array | null): Int32Array {
    const d = this.opts.dim, stride = this.stride, w = keyWords(keys), n = keys.length;
    if (this.idxScratch.length < n) { this.idxScratch = new Int32Array(n * 2); this.idxScratch2 = new Int32Array(n * 2); }
    const miss = this.idxScratch, to = out ? words(out) : null, mem = this.mem32;
    let m = 0;
    for (let j = 0; j < n; j++) {
      const s = this.slotOf(w, j);
      if (s < 0 || !this.valid(s, clock)) { miss[m++] = j; continue; }
      if (!to) continue;
      copyRow(to, j * d, mem, s * stride, d);
      this.lastUse[s] = clock;
    }
    return miss.slice(0, m);
  }

  /** Forgets every row (e.g. after a restore: nothing read before it may be served after). */
  clear(): void {
    this.index.clear();
    this.stamp.fill(-1);
    this.stateClock.fill(-1);
    this.free = [];
    for (let s = this.opts.capacity - 1; s >= 0; s--) this.free.push(s);
  }

  private drop(s: number): void {
    this.stamp[s] = -1;
    if (this.stateful) this.stateClock[s] = -1;
  }

  /** Frees at least an eighth of the capacity: expired rows, then the least recently used, never rows used at `clock`. */
  private evict(clock: number): void {
    const n = this.opts.capacity, target = Math.max(1, Math.ceil(n / 8));
    const live: number[] = [];
    let freed = 0;
    for (let s = 0; s < n; s++) {
      if (this.stamp[s]! < 0) continue;
      // Stateful: an expired row still holds a state that may serve a refresh.
      if (!this.valid(s, clock) && !(this.stateful && this.stateUsable(s, clock))) { this.drop(s); freed++; } else live.push(s);
    }
    if (freed < target) {
      live.sort((a, b) => this.lastUse[a]! - this.lastUse[b]!);
      for (const s of live) {
        if (freed >= target || this.lastUse[s]! >= clock) break;
        this.drop(s);
        freed++;
      }
    }
    this.stats.evictions += freed;
    this.index.clear();
    this.free = [];
    for (let s = n - 1; s >= 0; s--) {
      if (this.stamp[s]! < 0) this.free.push(s);
      else this.index.insert(this.keyLo[s]!, this.keyHi[s]!, s);
    }
  }
}
