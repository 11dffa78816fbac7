// One row-cached table's side of a worker step (issue #12, item 3): which of a step's rows the
// RowCache serves, which early rows (pulled during the last GPU work) stand, which rows are
// pulled now, with their optimizer state where the step's lookup says so (a stateful optimizer:
// row-cache.ts says why and when), and what is then held. WorkerStep keeps one per cached table.
import type { PSClient, PulledState } from '../client/ps-client.ts';
import type { TableDecl } from '../model/model-spec.ts';
import { KeyIndex } from '../keys/key-index.ts';
import { keyWords } from '../keys/keys.ts';
import { gatherKeys } from '../keys/index-arrays.ts';
import { RowCache, HIT, PULL_STATE, PULL_ONCE, type CacheLookup } from './row-cache.ts';
import { copyRow, scatterRows, words } from '../util/row-words.ts';
import { getOptimizer, resolveHyper } from '../server/optimizers.ts';
import { BUILTIN_OPTIMIZERS } from '../wire/vocabulary.ts';
import type { RowTrace } from './worker-step.ts';

export interface RowCacheConfig {
  rows: number;
  aspRefresh: number;
  /** Stateful optimizers: clocks a held optimizer state serves row-only refreshes (RowCacheOptions.stateRefresh; default DEFAULT_ROW_CACHE's). */
  stateRefresh?: number;
  /** Which misses are held (stateful optimizers: pulled with their state): RowCacheOptions.admit. */
  admit?: 'all' | 'second-touch';
}

/**
 * The cache's settings when it is on (training turns it on with `--cache-rows N`; the step
 * benchmark's +cache rows use these): 16384 rows per table (4 MiB at dim 64, twice that with
 * AdaGrad's slot), ASP rows served for 2 clocks after their read; a stateful table's state kept
 * for 16 clocks, missing rows held only on a second touch (chosen by measurement: row-cache.ts).
 */
export const DEFAULT_ROW_CACHE: Required<RowCacheConfig> = { rows: 16_384, aspRefresh: 2, stateRefresh: 16, admit: 'second-touch' };

/**
 * A cached table's early pull: the step's lookup (reused by `rows` while current), the positions
 * pulled early (what the cache lacked, but the keys of `against`, the step running then) and what
 * came back (null: nothing was pulled).
 */
export interface CachedEarly { lookup: CacheLookup; idx: Int32Array; against: BigUint64Array | null; pulled: Promise<CachePull> | null }

/** A cached table's pull of some positions: rows only (held where their state is) and with their state (held). */
export interface CachePull {
  rowsOnly: Int32Array; rows: Float32Array | null; fresh: number;
  withState: Int32Array; stateRows: Float32Array | null; stateFresh: number; state: PulledState | null;
}

/** The keys as a KeyIndex (key words -> position), to test membership without a BigInt per key. */
export function indexOf(keys: BigUint64Array): KeyIndex {
  const index = new KeyIndex(keys.length), w = keyWords(keys);
  for (let j = 0; j < keys.length; j++) index.insert(w[2 * j]!, w[2 * j + 1]!, j);
  return index;
}

/** The rows (of `dim`) of `src` for positions `keep`, where position j is row at[j] of src. */
function gatherRowsAt(src: Float32Array, keep: Int32Array, at: Int32Array, dim: number): Float32Array {
  const out = new Float32Array(keep.length * dim), to = words(out), from = words(src);
  for (let k = 0; k < keep.length; k++) copyRow(to, k * dim, from, at[keep[k]!]! * dim, dim);
  return out;
}

export class CachedTable {
  private constructor(readonly cache: RowCache, private readonly client: PSClient, private readonly tableId: number, private readonly dim: number) {}

  /**
   * The cached side of table `t`, or null: BSP tables, custom optimizers (the worker may not have
   * their module), a stateful optimizer on an fp16 or bf16 wire, and a cache of 0 rows are not cached.
   */
  static for(t: TableDecl, tableId: number, client: PSClient, cache: RowCacheConfig | undefined): CachedTable | null {
    if (!cache || cache.rows <= 0 || !(BUILTIN_OPTIMIZERS as readonly string[]).includes(t.optimizer) || (t.consistency !== 'ssp' && t.consistency !== 'asp')) return null;
    const opt = getOptimizer(t.optimizer);
    if (opt.slotCount > 0 && client.format !== 'f32') return null;
    return new CachedTable(new RowCache({
      dim: t.dim, capacity: cache.rows, consistency: t.consistency, staleness: t.staleness ?? 0, aspRefresh: cache.aspRefresh,
      update: opt.update, optimizer: t.optimizer, hyper: resolveHyper(opt, t.hyper), format: client.format, slotCount: opt.slotCount,
      stateRefresh: cache.stateRefresh ?? DEFAULT_ROW_CACHE.stateRefresh, admit: cache.admit ?? DEFAULT_ROW_CACHE.admit,
    }), client, tableId, t.dim);
  }

  /**
   * The early pull of `keys` for `clock` (pipelined): what the cache lacks. Keys of `running` (the
   * step now running, about to push them) are left out: they would come back without that push
   * and be pulled again after it; `rows` pulls them once, then.
   */
  early(keys: BigUint64Array, clock: number, running?: BigUint64Array): CachedEarly {
    const lookup = this.cache.lookup(keys, clock), code = lookup.code, n = keys.length;
    const index = running?.length ? indexOf(running) : null, w = keyWords(keys), idx: number[] = [];
    for (let j = 0; j < n; j++) if (code[j] !== HIT && !(index && index.lookup(w[2 * j]!, w[2 * j + 1]!) >= 0)) idx.push(j);
    const at = Int32Array.from(idx);
    return { lookup, idx: at, against: index ? running! : null, pulled: at.length ? this.pull(keys, at, code, clock) : null };
  }

  /**
   * The rows for `clock`: what the cache holds for it, then early rows (but those of keys the last
   * push touched, `pushed`, when the early pull did not leave them out already), then one pull
   * (issued in the caller's turn, so it joins the step's batch) of the rest; then what may be held
   * is held. One lookup serves it all (the early pull's while current). With `trace`, the RowTrace too.
   */
  async rows(table: number, keys: BigUint64Array, clock: number, early: CachedEarly | null, pushed: BigUint64Array | null, trace: boolean): Promise<{ rows: Float32Array; trace: RowTrace | null }> {
    const cache = this.cache, n = keys.length;
    const out = new Float32Array(n * this.dim);
    const look = cache.serveLookup(early?.lookup.clock === clock && early.lookup.keys === keys ? early.lookup : cache.lookup(keys, clock), out);
    // Which missing positions an early row covers (and is not outdated by this worker's last push).
    const fromEarly = new Uint8Array(n);
    if (early) for (const j of early.idx) fromEarly[j] = 1;
    if (early && pushed && pushed !== early.against) {
      const index = indexOf(pushed), w = keyWords(keys);
      for (const j of early.idx) if (index.lookup(w[2 * j]!, w[2 * j + 1]!) >= 0) fromEarly[j] = 0;
    }
    const code = look.code, rest: number[] = [];
    for (let j = 0; j < n; j++) if (code[j] !== HIT && !fromEarly[j]) rest.push(j);
    const now = rest.length ? this.pull(keys, Int32Array.from(rest), code, clock) : null; // issued in the caller's turn
    const fresh = trace ? cache.peek(keys) : null, cached = trace ? new Uint8Array(n).fill(1) : null;
    if (early?.pulled) this.place(keys, out, await early.pulled, fromEarly, clock, look, fresh, cached);
    if (now) this.place(keys, out, await now, null, clock, look, fresh, cached);
    cache.touchSeen(keys, clock);
    if (!trace) return { rows: out, trace: null };
    const readClock = new Int32Array(n).map((_, j) => (cached![j] ? -1 : clock));
    return { rows: out, trace: { table, keys, readClock, ownSeen: new Uint8Array(n).fill(1), fresh: fresh!, cached: cached! } };
  }

  /** Positions `idx` of `keys` pulled for `clock`: those the lookup's `code` marks PULL_STATE with their optimizer state, the others as rows; both pulls go out in this turn. */
  private pull(keys: BigUint64Array, idx: Int32Array, code: Uint8Array, clock: number): Promise<CachePull> {
    const st: number[] = [], ro: number[] = [];
    for (const j of idx) (code[j] === PULL_STATE ? st : ro).push(j);
    const withStateIdx = Int32Array.from(st), rowsOnly = Int32Array.from(ro);
    const rows = rowsOnly.length ? this.client.pullFresh(this.tableId, gatherKeys(keys, rowsOnly), { clock }) : null;
    const withState = withStateIdx.length ? this.client.pullWithState(this.tableId, gatherKeys(keys, withStateIdx), { clock }) : null;
    rows?.catch(() => {});
    withState?.catch(() => {});
    return Promise.all([rows, withState]).then(([r, s]) => ({
      rowsOnly, rows: r?.rows ?? null, fresh: r?.fresh ?? -1,
      withState: withStateIdx, stateRows: s?.rows ?? null, stateFresh: s?.fresh ?? -1, state: s?.state ?? null,
    }));
  }

  /** A CachePull's rows (those `use` marks, or all) into `out` and the cache (`look`'s slots for probes); for the trace, their freshness and that they were pulled. */
  private place(keys: BigUint64Array, out: Float32Array, part: CachePull, use: Uint8Array | null, clock: number, look: CacheLookup, fresh: Int32Array | null, cached: Uint8Array | null): void {
    const { cache, dim } = this, code = look.code;
    // Rows pulled once (PULL_ONCE: not admitted) go to `out` only.
    const held = (idx: Int32Array): Int32Array => {
      let once = 0;
      for (let k = 0; k < idx.length; k++) once += code[idx[k]!] === PULL_ONCE ? 1 : 0;
      return once ? idx.filter((j) => code[j] !== PULL_ONCE) : idx;
    };
    const one = (idx: Int32Array, rows: Float32Array | null, f: number, state: PulledState | null) => {
      if (!rows) return;
      let keep = idx;
      if (use) {
        let used = 0;
        for (const j of idx) used += use[j]!;
        if (used !== idx.length) {
          // Only some positions are used: their rows (and state) first.
          keep = idx.filter((j) => use[j]);
          const at = new Int32Array(keys.length);
          idx.forEach((j, k) => { at[j] = k; });
          rows = gatherRowsAt(rows, keep, at, dim);
          if (state) state = { slots: state.slots.map((sl) => gatherRowsAt(sl, keep, at, dim)), steps: Float32Array.from(keep, (j) => state!.steps[at[j]!]!) };
        }
      }
      scatterRows(out, keep, rows, dim);
      if (state) cache.insertWithState(keys, keep, out, f, clock, state, look); else cache.insert(keys, held(keep), out, f, clock, look);
      if (cached) for (const j of keep) { cached[j] = 0; if (fresh) fresh[j] = f; }
    };
    one(part.rowsOnly, part.rows, part.fresh, null);
    one(part.withState, part.stateRows, part.stateFresh, part.state);
  }
}
