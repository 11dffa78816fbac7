// The pure pieces of cutting rows and keys into per-server parts (ps-client.ts): which rows a
// range of a dense vector is, a part's rows gathered, and whether a part is every key in order.
import { keysFromNumbers } from '../keys/keys.ts';

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
