// Rows of floats copied as 32-bit words: one row (copyRow), rows scattered to positions
// (scatterRows), for the servers' tables and the workers' pulled rows alike. Words, not floats,
// and no subarray per row: the measured reasons are at copyRow.

/** The floats of `a` as 32-bit words (the same memory). */
export const words = (a: Float32Array): Int32Array => new Int32Array(a.buffer, a.byteOffset, a.length);

/**
 * dst[at + j] = src[from + j], j < n, over the floats' 32-bit words, four at a time. Not
 * set(subarray()): a row is 64-256 floats, and a subarray per row was a garbage object per row of
 * every pull (bench/store.ts, 200 pulls of 4096 rows: 80 scavenges, 212 ms, before; 1 after).
 * Words, not floats: a Float32Array element loop converts each value to float64 and back, and
 * took 6.6 ms a pull where set(subarray()) took 3.4 (same run).
 */
export function copyRow(dst: Int32Array, at: number, src: Int32Array, from: number, n: number): void {
  const n4 = n & ~3;
  let j = 0;
  for (; j < n4; j += 4) {
    dst[at + j] = src[from + j]!; dst[at + j + 1] = src[from + j + 1]!;
    dst[at + j + 2] = src[from + j + 2]!; dst[at + j + 3] = src[from + j + 3]!;
  }
  for (; j < n; j++) dst[at + j] = src[from + j]!;
}

/**
 * Rows (rows.length / dim of them, in `idx` order) copied into `out` at positions idx: one copy
 * when idx is one contiguous run (a pull's part when the worker grouped its keys by owner),
 * else row by row as words (each pulled row of a step came through here as one garbage view).
 */
export function scatterRows(out: Float32Array, idx: ArrayLike<number>, rows: Float32Array, dim: number): void {
  const m = idx.length, run = runStart(idx);
  if (run >= 0) { out.set(rows.subarray(0, m * dim), run * dim); return; }
  const to = words(out), from = words(rows);
  for (let k = 0; k < m; k++) copyRow(to, idx[k]! * dim, from, k * dim, dim);
}

/** Where positions `idx` are one increasing contiguous run (k, k+1, ...), its start k; else -1. */
export function runStart(idx: ArrayLike<number>): number {
  const m = idx.length;
  if (m === 0 || idx[m - 1]! - idx[0]! !== m - 1) return -1;
  for (let k = 1; k < m; k++) if (idx[k]! !== idx[k - 1]! + 1) return -1;
  return idx[0]!;
}
