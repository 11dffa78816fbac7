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
//   state serves row-only refreshes for `stateRefresh` clocks, then travels with the row again
//   (docs/training.md, "Row cache", has the long form).
// - Admission: a missing row enters (a stateful one with its state) only on its second touch
//   within ADMIT_WINDOW clocks; a row seen once is pulled and used, not copied in. Stateful: chosen
//   by pull bytes (`bench step --cache-policy`); SGD, SSP:2, 1 worker: 7954 evictions a step -> 0,
//   hit rate 0.19 -> 0.18, the cache's CPU over no cache +16-20 -> +15 ms (bench/RESULTS.md).
// - ASP has no bound: a cached row is served for `aspRefresh` clocks after the clock it was read
//   at (`--cache-refresh`), then pulled again.
//
// One lookup a key a step: RowCache.lookup finds every key's slot and what to do with it (served,
// pulled as a row, with its state, or once and not held) in one pass of touch blocks; the serve,
// inserts and the push's local update reuse those slots (a probe is a cache miss: the index and
// rows of 26 tables far exceed L2). A lookup stays current while the index changes only through
// it (CacheLookup.gen). Slots and eviction (expired first, then LRU): cache-slots.ts.
//
// Storage: row s and then its slots at s * stride (stride = (1 + slots) * dim floats), the layout
// the servers' SIMD kernels read (src/server/simd-rows.ts). With a built-in optimizer that has a
// kernel, that storage is a WASM memory sized for the capacity up front (never grown, so no view
// of it is ever detached) and applyPush is one kernel call over the held rows a push touches;
// otherwise (custom update, no WASM SIMD) it is a plain array and the JS update runs per row.
import { hash64, type KeyIndex } from '../keys/key-index.ts';
import { CacheSlots } from './cache-slots.ts';
import { keyWords } from '../keys/keys.ts';
import { roundToWire, rowValueBytes, type RowFormat } from '../wire/row-format.ts';
import type { UpdateFn } from '../server/optimizers.ts';
import { WasmRows } from '../server/simd-rows.ts';
import { TOUCH_BLOCK } from '../server/row-blocks.ts';
import { copyRow, words } from '../util/row-words.ts'; // rows copied as words
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
  /** Which missing rows are held (stateful: pulled with their state): all, or those this cache saw in the last ADMIT_WINDOW clocks (the others are pulled once, PULL_ONCE). */
  admit?: 'all' | 'second-touch';
}

/** Second-touch admission: a row looked up within this many clocks before is admitted. */
export const ADMIT_WINDOW = 8;

/** What a lookup found for a key: served from the cache, or pulled as a row (held if it may be), with its state (held), or once (a row, not held). */
export const HIT = 0, PULL_ROW = 1, PULL_STATE = 2, PULL_ONCE = 3;

/**
 * One lookup of a step's keys at `clock` (RowCache.lookup): per position, the key's slot (-1: not
 * held) and its code (HIT, PULL_ROW, PULL_STATE, PULL_ONCE). Current while `gen` is the cache's.
 */
export interface CacheLookup { readonly keys: BigUint64Array; readonly clock: number; gen: number; readonly slot: Int32Array; readonly code: Uint8Array }

export interface RowCacheStats {
  hits: number; misses: number; evictions: number;
  /** Pull bytes not sent: key and row of every hit, at the wire's value width. */
  bytesSaved: number;
}

const NO_SLOTS: Float32Array[] = [];
const NO_STEP = (): number => 0;

export class RowCache {
  readonly stats: RowCacheStats = { hits: 0, misses: 0, evictions: 0, bytesSaved: 0 };
  /** Stateful: rows pulled with their optimizer state (each costs its slots and a count more than a row). */
  statePulls = 0;
  /** Which slot holds which key, the rows' stamps, last uses and state clocks, eviction. */
  private readonly held: CacheSlots;
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
  /** Moves on whenever the index or a stamp changes other than through the lookup that is kept current (CacheLookup.gen). */
  private gen = 0;
  /** The lookup the last serve used: applyPush of the same keys reads its slots. */
  private last: CacheLookup | null = null;
  /** Where touch loops leave their sum, so the compiler cannot drop their loads as unused; lookup's hashes of a block. */
  private touchSink = 0;
  private hashes = new Int32Array(0);
  /** The slots' arrays (CacheSlots): stamp (SSP: the reply's freshness; ASP: the read clock; -1: free), last use, state clock. */
  private readonly stamp: Int32Array;
  private readonly lastUse: Int32Array;
  private readonly stateClock: Int32Array;
  private readonly rowBytes: number;
  private scratch = new Float32Array(0);
  /** Stateful: per slot, its optimizer slot rows (views of `mem` at offset (q + 1) * dim: the JS update's slot arrays) and update count. */
  private readonly slots: Float32Array[];
  private readonly steps: Uint32Array;
  /** Second-touch admission: last clock + 1 a key hashing here was looked up (0: never). */
  private readonly seen: Int32Array;
  private readonly seenMask: number;

  constructor(readonly opts: RowCacheOptions) {
    if (!(Number.isInteger(opts.capacity) && opts.capacity > 0)) throw new Error(`row cache: capacity ${opts.capacity} must be a positive integer`);
    const n = opts.capacity, k = opts.slotCount ?? 0;
    this.held = new CacheSlots(n, k > 0);
    ({ index: this.index, stamp: this.stamp, lastUse: this.lastUse, stateClock: this.stateClock } = this.held);
    this.rowBytes = 8 + opts.dim * rowValueBytes(opts.format);
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
    let m = 1;
    while (opts.admit === 'second-touch' && m < 8 * n) m *= 2;
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

  get size(): number { return this.held.size; }

  /** May the row in `slot` serve a read at `clock`? */
  private valid(slot: number, clock: number): boolean {
    const st = this.stamp[slot]!;
    if (st < 0) return false;
    return this.opts.consistency === 'ssp' ? clock - this.opts.staleness <= st : clock < st + this.opts.aspRefresh;
  }

  private slotOf(w: Uint32Array, j: number): number { return this.index.lookup(w[2 * j]!, w[2 * j + 1]!); }

  /**
   * Every key's slot and code at `clock` (counts nothing). A missing row is held when admitted
   * (every one, or second-touch: looked up in the last ADMIT_WINDOW clocks), else pulled once.
   * Stateless: a held row is refreshed as a row, an admitted one pulled as a row. Stateful: a row
   * whose held state is usable as a row only, an admitted one with its state. In touch blocks:
   * the buckets are loaded first (independent loads the CPU overlaps), then probed (TOUCH_BLOCK).
   */
  lookup(keys: BigUint64Array, clock: number): CacheLookup {
    const n = keys.length, w = keyWords(keys), index = this.index, slot = new Int32Array(n), code = new Uint8Array(n);
    const stateful = this.stateful, seen = this.seen.length ? this.seen : null, mask = this.seenMask, stamp = this.stamp, sc = this.stateClock;
    if (this.hashes.length < TOUCH_BLOCK) this.hashes = new Int32Array(TOUCH_BLOCK);
    const h = this.hashes;
    let sink = 0;
    for (let b = 0; b < n; b += TOUCH_BLOCK) {
      const e = Math.min(n, b + TOUCH_BLOCK);
      // Three passes a block, each of independent loads: the buckets (and admission filter
      // entries), then the slots' stamps (and state clocks), then the codes from what is now in cache.
      for (let j = b; j < e; j++) {
        const x = hash64(w[2 * j]!, w[2 * j + 1]!);
        h[j - b] = x;
        sink += index.touchHashed(x);
        if (seen) sink += seen[x & mask]!;
      }
      for (let j = b; j < e; j++) {
        const s = index.lookupHashed(w[2 * j]!, w[2 * j + 1]!, h[j - b]!);
        slot[j] = s;
        if (s >= 0) sink += stamp[s]! + (stateful ? sc[s]! : 0);
      }
      for (let j = b; j < e; j++) {
        const s = slot[j]!;
        if (s >= 0 && this.valid(s, clock)) continue; // HIT (0)
        if (s >= 0 && (!stateful || this.stateUsable(s, clock))) { code[j] = PULL_ROW; continue; } // held: refreshed in place
        let admit = true;
        if (seen) { const at = seen[h[j - b]! & mask]! - 1; admit = at >= 0 && at < clock && at >= clock - ADMIT_WINDOW; }
        code[j] = !admit ? PULL_ONCE : stateful ? PULL_STATE : PULL_ROW;
      }
    }
    this.touchSink = sink;
    return { keys, clock, gen: this.gen, slot, code };
  }

  /** `l` if it is still current, else the same keys looked up again. */
  refresh(l: CacheLookup): CacheLookup { return l.gen === this.gen ? l : this.lookup(l.keys, l.clock); }

  /**
   * Copies the rows `l` found servable into `out` (keys.length x dim), marks them used and counts;
   * returns the lookup it used (`l`, or `l` done again if it was not current), which applyPush then reads.
   */
  serveLookup(l: CacheLookup, out: Float32Array): CacheLookup {
    l = this.refresh(l);
    const d = this.opts.dim, stride = this.stride, to = words(out), mem = this.mem32, n = l.keys.length, { slot, code } = l;
    let hits = 0;
    for (let j = 0; j < n; j++) {
      if (code[j] !== HIT) continue;
      const s = slot[j]!;
      copyRow(to, j * d, mem, s * stride, d);
      this.lastUse[s] = l.clock;
      hits++;
    }
    this.stats.hits += hits;
    this.stats.misses += n - hits;
    this.stats.bytesSaved += hits * this.rowBytes;
    return (this.last = l);
  }

  /** Second-touch admission: these keys were looked up at `clock` (after that clock's lookups). */
  touchSeen(keys: BigUint64Array, clock: number): void {
    if (!this.seen.length) return;
    const w = keyWords(keys);
    for (let j = 0; j < keys.length; j++) this.seen[hash64(w[2 * j]!, w[2 * j + 1]!) & this.seenMask] = clock + 1;
  }

  /**
   * Stateful: holds the rows at positions `idx` of `rows` (keys.length x dim) with their state
   * (`state` in idx order, as PSClient.pullWithState gives it), read at `readClock`.
   */
  insertWithState(keys: BigUint64Array, idx: ArrayLike<number>, rows: Float32Array, fresh: number, readClock: number, state: PulledState, l?: CacheLookup): void {
    if (state.slots.length !== this.slots.length) throw new Error(`row cache: state of ${state.slots.length} slots for an optimizer of ${this.slots.length}`);
    this.statePulls += idx.length;
    this.place(keys, idx, rows, fresh, readClock, state, l ?? null);
  }

  /**
   * Holds the rows at positions `idx` of `rows` (keys.length x dim), pulled at `readClock` with
   * reply freshness `fresh`, as last used at `readClock`. Rows with unknown freshness (-1, an
   * older server) are not held under SSP. A freshness above the read clock cannot be true (this
   * worker is live and had not finished that clock): it is taken as the read clock, which the
   * rows do cover, so a wrong reply never makes a row look fresher than the pull's own clock.
   */
  insert(keys: BigUint64Array, idx: ArrayLike<number>, rows: Float32Array, fresh: number, readClock: number, l?: CacheLookup): void {
    this.place(keys, idx, rows, fresh, readClock, null, l ?? null);
  }

  /**
   * Stores rows (see insert). With `state`, its k-th row's state goes with the row at idx[k];
   * without it a stateful cache only refreshes rows whose held state is usable (a row must travel
   * with its state). Rows and slots are copied as words, no view per row (row-blocks.ts, copyRow).
   * With `l` (a lookup of these keys) current, its slots stand in for the probes, the slots of new
   * rows are written into it and it stays current; anything else that changes stamps moves `gen`.
   */
  private place(keys: BigUint64Array, idx: ArrayLike<number>, rows: Float32Array, fresh: number, readClock: number, state: PulledState | null, l: CacheLookup | null): void {
    const stamp = this.opts.consistency === 'ssp' ? Math.min(fresh, readClock) : readClock;
    if (stamp < 0 || idx.length === 0) return;
    const d = this.opts.dim, stride = this.stride, mem = this.mem32, w = keyWords(keys), needState = this.stateful && !state;
    const src = words(rows), slotSrc = state ? state.slots.map(words) : null;
    let hint = l !== null && l.keys === keys && l.gen === this.gen ? l : null;
    this.gen++;
    if (hint) hint.gen = this.gen;
    for (let k = 0; k < idx.length; k++) {
      const j = idx[k]!, lo = w[2 * j]!, hi = w[2 * j + 1]!;
      let s = hint ? hint.slot[j]! : this.index.lookup(lo, hi);
      if (needState && (s < 0 || !this.stateUsable(s, readClock))) continue;
      if (s < 0) {
        if (this.held.full) { this.evict(readClock); hint = null; } // the slots moved: probe from here on
        s = this.held.take(lo, hi);
        if (s < 0) return; // every held row is in use at this clock
        if (hint) hint.slot[j] = s;
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
    const slot = this.slotsOf(keys);
    if (this.wasm) { this.applyPushWasm(slot, grads); return; }
    const { update, hyper } = this.opts, d = this.opts.dim, stride = this.stride;
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
        const s = slot[j]!;
        if (s >= 0 && this.stateClock[s]! >= 0) update(this.mem, s * stride, g, j * d, d, this.slots, s * stride, ++this.steps[s]!, hyper);
      }
      return;
    }
    for (let j = 0; j < keys.length; j++) {
      const s = slot[j]!;
      if (s >= 0 && this.stamp[s]! >= 0) update(this.mem, s * stride, g, j * d, d, NO_SLOTS, 0, 0, hyper);
    }
  }

  /**
   * applyPush through the kernel: the held rows the push touches (the same rows, in the same
   * order, as the JS loop above), their gradients gathered into the kernel's scratch and rounded
   * there to the wire's format; one kernel call per chunk (Adam: per row, its count in the scalars).
   */
  private applyPushWasm(slot: Int32Array, grads: Float32Array): void {
    const n = slot.length, held = this.stateful ? this.stateClock : this.stamp, rowBytes = this.stride * 4;
    if (this.rowAt.length < n) { this.rowAt = new Int32Array(n * 2); this.gradRow = new Int32Array(n * 2); this.pushSlot = new Int32Array(n * 2); }
    const rowAt = this.rowAt, gradRow = this.gradRow, pushSlot = this.pushSlot;
    let m = 0;
    for (let j = 0; j < n; j++) {
      const s = slot[j]!;
      if (s < 0 || held[s]! < 0) continue;
      rowAt[m] = this.memAt + s * rowBytes; gradRow[m] = j; pushSlot[m] = s; m++;
    }
    if (m > 0) this.wasm!.runAt(rowAt, gradRow, m, grads, this.stepOf, this.round);
  }

  /** The slot of every key: the last serve's lookup when it is of these keys and current, else probed. */
  private slotsOf(keys: BigUint64Array): Int32Array {
    const l = this.last;
    if (l && l.keys === keys && l.gen === this.gen) return l.slot;
    const w = keyWords(keys);
    return Int32Array.from({ length: keys.length }, (_, j) => this.slotOf(w, j));
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

  /** Forgets every row (e.g. after a restore: nothing read before it may be served after). */
  clear(): void {
    this.gen++;
    this.held.clear();
  }

  /** Frees slots (CacheSlots.evict): dead rows are expired ones, but for a stateful optimizer's whose state may still serve a refresh. */
  private evict(clock: number): void {
    this.stats.evictions += this.held.evict(clock, (s) => !this.valid(s, clock) && !(this.stateful && this.stateUsable(s, clock)));
    this.gen++;
  }
}
