// The pure pieces of cutting rows and keys into per-server parts (ps-client.ts): which rows a
// range of a dense vector is, a part's rows gathered, whether a part is every key in order or one
// contiguous run of them (the worker orders a batch's rows by owner so that each part is a run:
// its keys, gradients and pulled rows are then subarrays and single copies, not per-row gathers).
import type { HashRing } from '../cluster/hash-ring.ts';
import { gatherKeys, iota } from '../keys/index-arrays.ts';
import { keysFromNumbers } from '../keys/keys.ts';
import { runStart } from '../util/row-words.ts';
export { runStart } from '../util/row-words.ts';

/** How a flat dense vector is cut into rows of a range table. */
export function rangeKeys(offset: number, length: number, blockSize: number): { keys: BigUint64Array; first: number } {
  const first = Math.floor(offset / blockSize);
  const last = Math.floor((offset + length - 1) / blockSize);
  const n = new Float64Array(Math.max(0, last - first + 1));
  for (let i = 0; i < n.length; i++) n[i] = first + i;
  return { keys: keysFromNumbers(n), first };
}

/** Rows `idx` (each `dim` floats) of `rows`, packed. */
export function gatherRows(rows: Float32Array, idx: readonly number[], dim: number): Float32Array {
  const out = new Float32Array(idx.length * dim);
  idx.forEach((k, i) => out.set(rows.subarray(k * dim, (k + 1) * dim), i * dim));
  return out;
}

/** A pull's `at` (PullOptions): one row of `into` per key, each inside it, none twice (two keys' rows in one place would be a silent loss). */
export function checkAt(at: Int32Array, n: number, into: Float32Array | undefined, dim: number): void {
  if (!into) throw new RangeError('pull: `at` places rows in `into`; pass both');
  if (at.length !== n) throw new RangeError(`pull: at has ${at.length} positions for ${n} keys`);
  const rows = Math.floor(into.length / dim), seen = new Uint8Array(rows);
  for (let k = 0; k < n; k++) {
    const r = at[k]!;
    if (!(r >= 0 && r < rows) || seen[r]) throw new RangeError(`pull: at[${k}] = ${r} is ${seen[r] ? 'a row already placed' : `outside into (${rows} rows of dim ${dim})`}`);
    seen[r] = 1;
  }
}

/** True when a part is every key in order (one server, or all keys on one): no gather needed. */
export function isIdentity(idx: Int32Array, n: number): boolean {
  return idx.length === n && (n === 0 || (idx[0] === 0 && idx[n - 1] === n - 1));
}

/**
 * The positions of a partition's parts one after the other (part 0's, then part 1's, ...): the
 * order that makes each part a contiguous run. Null when the parts already are (one server, or
 * the keys already grouped).
 */
export function groupedOrder(parts: Int32Array[], n: number): Int32Array | null {
  if (parts.every((p) => p.length === 0 || runStart(p) >= 0)) return null;
  const order = new Int32Array(n);
  let at = 0;
  for (const p of parts) { order.set(p, at); at += p.length; }
  return order;
}

/**
 * Key arrays grouped by owner (PSClient.groupByOwner), each remembered with its parts under the
 * ring that grouped it: the pull and the push of those keys reuse the parts instead of hashing
 * every key again (26 tables x ~1850 rows on 2 servers: ~0.65 ms a partition, two a step).
 * Held weakly by the array itself, which must not change after grouping; a new view has a new
 * ring, so parts from an older one are never reused.
 */
export class OwnerGroups {
  private readonly known = new WeakMap<BigUint64Array, { ring: HashRing; table: number; parts: Int32Array[] }>();

  /** `keys` in owner order (a new array, or `keys` when already grouped) and the order itself (null: unchanged). */
  group(ring: HashRing, table: number, keys: BigUint64Array): { order: Int32Array | null; keys: BigUint64Array } {
    const parts = ring.partition(table, keys);
    const order = groupedOrder(parts, keys.length);
    if (!order) { this.known.set(keys, { ring, table, parts }); return { order, keys }; }
    const grouped = gatherKeys(keys, order), runs: Int32Array[] = [];
    let at = 0;
    for (const p of parts) { runs.push(iota(p.length, at)); at += p.length; }
    this.known.set(grouped, { ring, table, parts: runs });
    return { order, keys: grouped };
  }

  /**
   * The keys at ascending positions `at` of `keys`. When `keys` is grouped under `ring`, so is the
   * subset (a subsequence of owner runs is owner runs): its parts are remembered without hashing a
   * key (SSP's early pull of all but a step's late rows: ~1.9 ms a step of partition at the gpu preset).
   */
  subset(ring: HashRing, table: number, keys: BigUint64Array, at: Int32Array): BigUint64Array {
    const sub = gatherKeys(keys, at), k = this.known.get(keys);
    if (!k || k.ring !== ring || k.table !== table || !k.parts.every((p) => p.length === 0 || runStart(p) >= 0)) return sub;
    for (let j = 1; j < at.length; j++) if (!(at[j]! > at[j - 1]!)) return sub; // not ascending: partition it afresh
    const parts = k.parts.map((p) => {
      if (p.length === 0) return p;
      const from = lowerBound(at, p[0]!), to = lowerBound(at, p[0]! + p.length);
      return iota(to - from, from);
    });
    this.known.set(sub, { ring, table, parts });
    return sub;
  }

  /** Each server's positions of `keys` under `ring`: remembered when `keys` was grouped under it, else computed. */
  partition(ring: HashRing, table: number, keys: BigUint64Array): Int32Array[] {
    const k = this.known.get(keys);
    return k && k.ring === ring && k.table === table ? k.parts : ring.partition(table, keys);
  }
}

/** The first j with a[j] >= x (a ascending). */
function lowerBound(a: Int32Array, x: number): number {
  let lo = 0, hi = a.length;
  while (lo < hi) { const mid = (lo + hi) >>> 1; if (a[mid]! < x) lo = mid + 1; else hi = mid; }
  return lo;
}

/**
 * Failed parts of one request merged per push number (their positions joined), for re-routing:
 * a part re-routed under one view can split across servers, and if those pieces fail again they
 * can meet at one server under the next view; sent as two parts with one number in one batch,
 * the server refused the batch as malformed (`npm run chaos -- --partitions`, 2026-12-02).
 */
export function mergeBySeq(parts: { idx: Int32Array; seq: number }[]): { idx: Int32Array; seq: number }[] {
  const bySeq = new Map<number, Int32Array[]>();
  for (const p of parts) { const l = bySeq.get(p.seq); if (l) l.push(p.idx); else bySeq.set(p.seq, [p.idx]); }
  return [...bySeq].map(([seq, l]) => {
    if (l.length === 1) return { idx: l[0]!, seq };
    const idx = new Int32Array(l.reduce((a, x) => a + x.length, 0));
    let at = 0;
    for (const x of l) { idx.set(x, at); at += x.length; }
    return { idx, seq };
  });
}
