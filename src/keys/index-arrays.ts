// Small typed-array helpers for routing keys, written as plain loops: the generic
// TypedArray.from({ length }, fn) and .map(fn) call a function per element and cost a tenth of
// a millisecond per 4096 keys, on every request.
import { keyWords } from './keys.ts';

/** [0, 1, ..., n - 1]. */
export function iota(n: number, from = 0): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = from + i;
  return a;
}

/** keys[idx[0]], keys[idx[1]], ... copied as u32 word pairs (reading a BigUint64Array element makes a BigInt). */
export function gatherKeys(keys: BigUint64Array, idx: ArrayLike<number>): BigUint64Array {
  const out = new BigUint64Array(idx.length);
  const from = keyWords(keys);
  const to = new Uint32Array(out.buffer);
  for (let i = 0; i < idx.length; i++) {
    const k = idx[i]!;
    to[2 * i] = from[2 * k]!;
    to[2 * i + 1] = from[2 * k + 1]!;
  }
  return out;
}

/** outer[inner[0]], outer[inner[1]], ...: positions of a subset mapped back to the original. */
export function compose(outer: Int32Array, inner: Int32Array): Int32Array {
  const out = new Int32Array(inner.length);
  for (let i = 0; i < inner.length; i++) out[i] = outer[inner[i]!]!;
  return out;
}
