// The pure pieces of cutting rows and keys into per-server parts (ps-client.ts): which rows a
// range of a dense vector is, a part's rows gathered, whether a part is every key in order or one
// contiguous run of them (the worker orders a batch's rows by owner so that each part is a run:
// its keys, gradients and pulled rows are then subarrays and single copies, not per-row gathers).
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
