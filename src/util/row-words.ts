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

/** Runs at least this long are one set() (a view each); shorter ones are copied row by row. */
const RUN_ROWS = 4;

/**
 * Rows (rows.length / dim of them, in `idx` order) copied into `out` at positions idx: each run of
 * RUN_ROWS or more contiguous positions as one copy (set, a memcpy; a pull's part is one run when
 * the worker grouped its keys by owner), shorter runs row by row as words. SSP's early pull leaves
 * the running step's rows out, so its positions are runs of ~4-5 with holes: 26 x ~690 rows of 64
 * floats, in a loop, 1.51-1.62 ms a step row by row against 0.65-0.95 ms by runs.
 */
export function scatterRows(out: Float32Array, idx: ArrayLike<number>, rows: Float32Array, dim: number): void {
  const m = idx.length, to = words(out), from = words(rows);
  for (let k = 0; k < m;) {
    let e = k + 1;
    while (e < m && idx[e] === idx[e - 1]! + 1) e++;
    if (e - k >= RUN_ROWS) out.set(rows.subarray(k * dim, e * dim), idx[k]! * dim);
    else for (let q = k; q < e; q++) copyRow(to, idx[q]! * dim, from, q * dim, dim);
    k = e;
  }
}

/** Where positions `idx` are one increasing contiguous run (k, k+1, ...), its start k; else -1. */
export function runStart(idx: ArrayLike<number>): number {
  const m = idx.length;
  if (m === 0 || idx[m - 1]! - idx[0]! !== m - 1) return -1;
  for (let k = 1; k < m; k++) if (idx[k]! !== idx[k - 1]! + 1) return -1;
  return idx[0]!;
}
